//! Writes `reports/schema/report.v1.json` from the report's types, after a field was added:
//! `cargo run --example report_schema`. `tests/schema.rs` checks the file is up to date.

use std::path::Path;

use tcpbench::report::schema;

fn main() -> std::io::Result<()> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(schema::PATH);
    std::fs::write(&path, schema::render())?;
    println!("wrote {}", path.display());
    Ok(())
}
