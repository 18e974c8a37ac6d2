//! (filled in by the model-call work: `vista_generate`, generic over `VisionLanguageModel`)
