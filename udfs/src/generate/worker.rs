//! The device worker: one dedicated thread per loaded model that owns it, gathers rows from every
//! partition into micro-batches, computes each distinct (images, instruction, settings) once, and
//! answers through oneshot channels. Nothing here runs a model forward on a tokio thread.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{oneshot, OnceCell};

use super::{GenerateRequest, GenerateSettings, ModelLoader, ModelSpec, VisionLanguageModel};

/// How long the worker waits for more rows before running a micro-batch smaller than
/// `batch_size`. Partitions hand their rows over within microseconds of each other; a model
/// forward takes far longer than this, so a full batch is worth the wait.
pub const DEFAULT_LINGER: Duration = Duration::from_millis(30);

/// Completed results (texts or errors) kept per model for re-use; images are not kept.
const RESULT_CACHE_ROWS: usize = 65_536;

/// What the worker sends back for one row.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub text: Result<String, String>,
    /// Generation stopped on `max_new_tokens`, not on an end token.
    pub truncated: bool,
    /// Model time of the micro-batch that computed the row, divided by its rows.
    pub latency_ms: f64,
    /// Rows in that micro-batch.
    pub batch_rows: usize,
}

/// A content key: 128 bits over the image bytes, the instruction and the settings, so equal
/// inputs share one computation without the cache holding the images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ContentKey(u64, u64);

impl ContentKey {
    pub fn of(request: &GenerateRequest, settings: &GenerateSettings) -> ContentKey {
        let half = |salt: u64| {
            let mut h = DefaultHasher::new();
            salt.hash(&mut h);
            request.hash(&mut h);
            hash_settings(settings, &mut h);
            h.finish()
        };
        ContentKey(half(0x5157_4154), half(0x9e37_79b9_7f4a_7c15))
    }
}

fn hash_settings(s: &GenerateSettings, h: &mut impl Hasher) {
    s.max_new_tokens.hash(h);
    s.min_new_tokens.hash(h);
    s.num_beams.hash(h);
    s.temperature.to_bits().hash(h);
    s.top_p.to_bits().hash(h);
    s.seed.hash(h);
    s.prompt_template.hash(h);
    s.coord_decode.hash(h);
}

/// One row waiting for the model.
struct Job {
    key: ContentKey,
    request: GenerateRequest,
    settings: Arc<GenerateSettings>,
    batch_size: usize,
    reply: oneshot::Sender<Outcome>,
}

/// A distinct row in the queue.
struct Pending {
    key: ContentKey,
    request: GenerateRequest,
    settings: Arc<GenerateSettings>,
    batch_size: usize,
}

/// A handle to a running worker (cheap to clone; the thread ends when every handle is gone).
#[derive(Clone)]
pub struct Worker {
    tx: Sender<Job>,
    fingerprint: Arc<str>,
}

impl Worker {
    /// The loaded model's fingerprint.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Queues one row and returns where its outcome will arrive.
    pub fn submit(
        &self,
        request: GenerateRequest,
        settings: Arc<GenerateSettings>,
        batch_size: usize,
    ) -> Result<oneshot::Receiver<Outcome>, String> {
        let (reply, rx) = oneshot::channel();
        let key = ContentKey::of(&request, &settings);
        self.tx
            .send(Job { key, request, settings, batch_size: batch_size.max(1), reply })
            .map_err(|_| "the model worker has stopped".to_string())?;
        Ok(rx)
    }

    /// Starts a worker thread that loads the model for `spec` and then serves jobs.
    async fn start(
        loader: ModelLoader,
        spec: ModelSpec,
        linger: Duration,
    ) -> Result<Worker, String> {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let (tx, rx) = mpsc::channel::<Job>();
        let (loaded_tx, loaded_rx) = oneshot::channel();
        let name = format!("vista-model-{}", NEXT.fetch_add(1, Ordering::Relaxed));
        std::thread::Builder::new()
            .name(name)
            .spawn(move || {
                // Loading reads gigabytes and may touch the device: it belongs on this thread too.
                let model = match loader(&spec) {
                    Ok(m) => {
                        let _ = loaded_tx.send(Ok(m.fingerprint()));
                        m
                    }
                    Err(e) => {
                        let _ = loaded_tx.send(Err(e));
                        return;
                    }
                };
                serve(model, rx, linger);
            })
            .map_err(|e| format!("cannot start the model worker thread: {e}"))?;
        let fingerprint =
            loaded_rx.await.map_err(|_| "the model worker stopped while loading".to_string())??;
        Ok(Worker { tx, fingerprint: fingerprint.into() })
    }
}

/// Workers by model spec, so a model is loaded once per process and shared by every query,
/// partition and session. A failed load is not remembered: the next query tries again.
type Registry = Mutex<HashMap<ModelSpec, Arc<OnceCell<Worker>>>>;

static WORKERS: LazyLock<Registry> = LazyLock::new(|| Mutex::new(HashMap::new()));

/// The worker for `spec`, starting it (and loading the model) on first use. `linger` applies
/// to a worker this call starts.
pub async fn worker_for(
    loader: &ModelLoader,
    spec: &ModelSpec,
    linger: Duration,
) -> Result<Worker, String> {
    let cell = {
        let mut map = WORKERS.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(spec.clone()).or_default().clone()
    };
    cell.get_or_try_init(|| Worker::start(loader.clone(), spec.clone(), linger)).await.cloned()
}

/// The worker loop: gather a micro-batch, run it, answer, repeat until every handle is gone.
fn serve(model: Arc<dyn VisionLanguageModel>, rx: Receiver<Job>, linger: Duration) {
    let mut state = State::default();
    loop {
        if state.queue.is_empty() {
            match rx.recv() {
                Ok(job) => state.accept(job),
                Err(_) => return,
            }
        }
        // Take whatever is already waiting, then linger for stragglers from other partitions.
        let batch_size = state.queue.front().map_or(1, |p| p.batch_size);
        let deadline = Instant::now() + linger;
        let mut open = true;
        while state.queue.len() < batch_size {
            match rx.try_recv() {
                Ok(job) => {
                    state.accept(job);
                    continue;
                }
                Err(mpsc::TryRecvError::Disconnected) => {
                    open = false;
                    break;
                }
                Err(mpsc::TryRecvError::Empty) => {}
            }
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            match rx.recv_timeout(deadline - now) {
                Ok(job) => state.accept(job),
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => {
                    open = false;
                    break;
                }
            }
        }
        state.run_one_batch(model.as_ref());
        if !open && state.queue.is_empty() {
            return;
        }
    }
}

/// Distinct rows waiting (in arrival order), the callers waiting on each, and recent results.
#[derive(Default)]
struct State {
    queue: VecDeque<Pending>,
    waiting: HashMap<ContentKey, Vec<oneshot::Sender<Outcome>>>,
    done: HashMap<ContentKey, Outcome>,
    done_order: VecDeque<ContentKey>,
}

impl State {
    fn accept(&mut self, job: Job) {
        if let Some(outcome) = self.done.get(&job.key) {
            let _ = job.reply.send(outcome.clone());
            return;
        }
        match self.waiting.get_mut(&job.key) {
            Some(waiters) => waiters.push(job.reply),
            None => {
                self.waiting.insert(job.key, vec![job.reply]);
                let Job { key, request, settings, batch_size, .. } = job;
                self.queue.push_back(Pending { key, request, settings, batch_size });
            }
        }
    }

    /// Runs up to `batch_size` queued rows that share the first row's settings and batch size.
    fn run_one_batch(&mut self, model: &dyn VisionLanguageModel) {
        let Some((settings, batch_size)) =
            self.queue.front().map(|p| (p.settings.clone(), p.batch_size))
        else {
            return;
        };
        let mut keys = Vec::new();
        let mut requests = Vec::new();
        let mut rest = VecDeque::new();
        while let Some(p) = self.queue.pop_front() {
            let same = Arc::ptr_eq(&p.settings, &settings) || *p.settings == *settings;
            if requests.len() < batch_size && same && p.batch_size == batch_size {
                keys.push(p.key);
                requests.push(p.request);
            } else {
                rest.push_back(p);
            }
        }
        self.queue = rest;
        let started = Instant::now();
        let mut results = model.generate_detailed(&requests, &settings);
        let latency_ms = started.elapsed().as_secs_f64() * 1000.0 / requests.len() as f64;
        if results.len() != requests.len() {
            let msg =
                format!("the model returned {} results for {} rows", results.len(), requests.len());
            results = vec![Err(msg); requests.len()];
        }
        for (key, result) in keys.into_iter().zip(results) {
            let (text, truncated) = match result {
                Ok(g) => (Ok(g.text), g.truncated),
                Err(e) => (Err(e), false),
            };
            let outcome = Outcome { text, truncated, latency_ms, batch_rows: requests.len() };
            for reply in self.waiting.remove(&key).unwrap_or_default() {
                let _ = reply.send(outcome.clone());
            }
            // Errors are remembered too: they are per-row facts (a corrupt image), and a query
            // that asks for the same row again (a plan that copies the call) must not pay twice.
            self.remember(key, outcome);
        }
    }

    fn remember(&mut self, key: ContentKey, outcome: Outcome) {
        if self.done.insert(key, outcome).is_none() {
            self.done_order.push_back(key);
        }
        while self.done_order.len() > RESULT_CACHE_ROWS {
            if let Some(old) = self.done_order.pop_front() {
                self.done.remove(&old);
            }
        }
    }
}
