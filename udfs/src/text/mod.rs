//! Text functions: coordinate formats (boxes, points, polygons), PTB tokenisation, prompt
//! templates and answer parsing.

pub mod coords;
pub mod prompt;
pub mod ptb;
pub mod stable_hash;

use datafusion::logical_expr::ScalarUDF;

pub fn scalar_functions() -> Vec<ScalarUDF> {
    let mut v = coords::scalar_functions();
    v.extend(ptb::scalar_functions());
    v.extend(prompt::scalar_functions());
    v.push(ScalarUDF::new_from_impl(stable_hash::StableHashFunc::new()));
    v
}
