//! The built-in tools every engine can call.

mod calculator;
mod search_history;

pub use calculator::{Calculator, evaluate};
pub use search_history::SearchHistory;
