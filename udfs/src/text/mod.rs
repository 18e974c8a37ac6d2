//! Text functions: coordinate formats (boxes, points, polygons), PTB tokenisation, prompt
//! templates and answer parsing.

pub mod coords;
pub mod prompt;
pub mod ptb;

use datafusion::logical_expr::ScalarUDF;

pub fn scalar_functions() -> Vec<ScalarUDF> {
    let mut v = coords::scalar_functions();
    v.extend(ptb::scalar_functions());
    v.extend(prompt::scalar_functions());
    v
}
