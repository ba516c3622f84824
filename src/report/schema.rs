//! The JSON Schema of `tcpbench.report.v1`, generated from the report's types.
//!
//! `reports/schema/report.v1.json` is [`render`]'s output; `cargo run --example report_schema`
//! writes it, and `tests/schema.rs` fails when the two differ. The schema describes what
//! [`super::json::parse`] accepts: a field with a default is not required, every object
//! admits keys it does not list (fields may be added within v1).

use schemars::generate::SchemaSettings;

use super::{Report, SCHEMA};

/// Where the schema is kept, from the repository's root.
pub const PATH: &str = "reports/schema/report.v1.json";

/// The JSON Schema (draft 2020-12) of a report.
pub fn report_v1() -> serde_json::Value {
    let mut schema = SchemaSettings::draft2020_12()
        .for_deserialize()
        .into_generator()
        .into_root_schema_for::<Report>();
    schema.insert("title".into(), SCHEMA.into());
    schema.insert(
        "description".into(),
        "A tcpbench report: what `tcpbench run --json` and `tcpbench merge -o` write. Within \
         v1 fields may be added, and readers accept older v1 reports: a field that is not \
         required takes its default when missing. A renamed, removed or retyped field is v2."
            .into(),
    );
    schema.to_value()
}

/// The schema as the committed file holds it: pretty JSON and a final newline.
pub fn render() -> String {
    let mut text = serde_json::to_string_pretty(&report_v1()).expect("a schema serializes");
    text.push('\n');
    text
}
