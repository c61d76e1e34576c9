//! `cordon analytics`: the usage report read from ClickHouse, printed as a table or JSON.

use anyhow::Context;
use cordon_analytics::{UsageRange, Warehouse};

use crate::cli::AnalyticsArgs;

pub fn run(args: AnalyticsArgs) -> anyhow::Result<()> {
    let to = args.to.unwrap_or_else(cordon_core::now);
    let from = args.from.unwrap_or(to - time::Duration::DAY);
    anyhow::ensure!(from < to, "--from must be before --to");
    let warehouse = Warehouse::new(args.clickhouse_url);
    let runtime = tokio::runtime::Runtime::new().context("could not start the async runtime")?;
    let report = runtime
        .block_on(warehouse.usage(UsageRange { from, to }))
        .context("could not read analytics from ClickHouse")?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.to_text());
    }
    Ok(())
}
