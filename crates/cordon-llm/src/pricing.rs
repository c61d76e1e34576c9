//! Price table: US dollars per million input and output tokens, per model; configurable.

use std::collections::BTreeMap;

use cordon_core::Usage;
use serde::{Deserialize, Serialize};

/// What one model charges, in US dollars per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelPrice {
    pub input_per_mtok: f64,
    pub output_per_mtok: f64,
}

impl ModelPrice {
    pub fn cost_usd(&self, usage: Usage) -> f64 {
        (usage.input_tokens as f64 * self.input_per_mtok
            + usage.output_tokens as f64 * self.output_per_mtok)
            / 1_000_000.0
    }
}

/// Prices by model name. A model is priced by its exact name, else by the
/// longest entry its name starts with (`gpt-4o-mini-2024-07-18` → `gpt-4o-mini`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PriceTable {
    prices: BTreeMap<String, ModelPrice>,
}

/// List prices of common models when this table was written (USD per million
/// input/output tokens). Providers change prices: override them in the config.
const BUILTIN: &[(&str, f64, f64)] = &[
    ("gpt-4o", 2.50, 10.00),
    ("gpt-4o-mini", 0.15, 0.60),
    ("gpt-4.1", 2.00, 8.00),
    ("gpt-4.1-mini", 0.40, 1.60),
    ("gpt-4.1-nano", 0.10, 0.40),
    ("o3-mini", 1.10, 4.40),
    ("o4-mini", 1.10, 4.40),
    ("claude-3-haiku", 0.25, 1.25),
    ("claude-3-5-haiku", 0.80, 4.00),
    ("claude-3-5-sonnet", 3.00, 15.00),
    ("claude-3-7-sonnet", 3.00, 15.00),
    ("claude-sonnet-4", 3.00, 15.00),
    ("claude-opus-4", 15.00, 75.00),
];

impl PriceTable {
    /// The built-in list prices.
    pub fn builtin() -> Self {
        let prices = BUILTIN
            .iter()
            .map(|&(model, input, output)| {
                (
                    model.to_owned(),
                    ModelPrice {
                        input_per_mtok: input,
                        output_per_mtok: output,
                    },
                )
            })
            .collect();
        Self { prices }
    }

    /// Adds or replaces entries (configured prices win over built-in ones).
    pub fn extend(&mut self, prices: impl IntoIterator<Item = (String, ModelPrice)>) {
        self.prices.extend(prices);
    }

    /// The price of `model`, if it is known.
    pub fn lookup(&self, model: &str) -> Option<ModelPrice> {
        if let Some(price) = self.prices.get(model) {
            return Some(*price);
        }
        self.prices
            .iter()
            .filter(|(name, _)| model.starts_with(name.as_str()))
            .max_by_key(|(name, _)| name.len())
            .map(|(_, price)| *price)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests panic on a broken assumption")]
    use super::*;

    #[test]
    fn exact_then_longest_prefix() {
        let table = PriceTable::builtin();
        assert_eq!(table.lookup("gpt-4o").unwrap().input_per_mtok, 2.50);
        assert_eq!(
            table
                .lookup("gpt-4o-mini-2024-07-18")
                .unwrap()
                .input_per_mtok,
            0.15
        );
        assert_eq!(
            table
                .lookup("claude-3-5-haiku-latest")
                .unwrap()
                .output_per_mtok,
            4.00
        );
        assert_eq!(table.lookup("llama3.2"), None);
    }

    #[test]
    fn configured_prices_override_and_cost_is_per_million() {
        let mut table = PriceTable::builtin();
        let price = ModelPrice {
            input_per_mtok: 1.0,
            output_per_mtok: 2.0,
        };
        table.extend([("gpt-4o".to_owned(), price), ("llama3.2".to_owned(), price)]);
        assert_eq!(table.lookup("gpt-4o"), Some(price));
        assert_eq!(table.lookup("llama3.2:3b"), Some(price));
        let usage = Usage {
            input_tokens: 1_000,
            output_tokens: 500,
        };
        assert!((price.cost_usd(usage) - 0.002).abs() < 1e-12);
    }
}
