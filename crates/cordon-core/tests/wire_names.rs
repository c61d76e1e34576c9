//! The names enums are stored and sent under: serde's and `as_str`'s agree for every variant.
#![allow(
    clippy::unwrap_used,
    reason = "a test should panic loudly on a broken assumption"
)]

use std::fmt::Debug;

use cordon_core::{ErrorCode, Role, RunStatus};
use serde::Serialize;
use serde::de::DeserializeOwned;
use strum::IntoEnumIterator;

fn assert_names_agree<T>(as_str: fn(T) -> &'static str)
where
    T: IntoEnumIterator + Serialize + DeserializeOwned + Copy + PartialEq + Debug,
{
    for variant in T::iter() {
        let name = as_str(variant);
        assert_eq!(serde_json::to_value(variant).unwrap(), name, "{variant:?}");
        let back: T = serde_json::from_value(name.into()).unwrap();
        assert_eq!(back, variant);
    }
}

#[test]
fn error_codes_have_one_name() {
    assert_names_agree(ErrorCode::as_str);
    assert_eq!(
        ErrorCode::UserConcurrencyLimit.as_str(),
        "user_concurrency_limit"
    );
    assert_eq!(ErrorCode::LlmRateLimited.as_str(), "llm_rate_limited");
}

#[test]
fn run_statuses_have_one_name_and_parse_back() {
    assert_names_agree(RunStatus::as_str);
    for status in RunStatus::iter() {
        assert_eq!(status.as_str().parse::<RunStatus>(), Ok(status));
    }
    assert_eq!(RunStatus::TimedOut.as_str(), "timed_out");
    assert!("bogus".parse::<RunStatus>().is_err());
}

#[test]
fn roles_have_one_name_and_parse_back() {
    assert_names_agree(Role::as_str);
    for role in Role::iter() {
        assert_eq!(Role::parse(role.as_str()), Some(role));
    }
    assert_eq!(Role::parse("system"), None);
}
