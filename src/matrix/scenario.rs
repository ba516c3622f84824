//! A scenario file: TOML scenarios over `[defaults]`, each turned into `tcpbench run` flags and
//! parsed by the same clap and [`RunConfig`] code as the command line; errors name file:line.

use std::collections::BTreeMap;
use std::path::Path;

use clap::CommandFactory;
use serde::Deserialize;
use toml::Spanned;

use super::server;
use crate::cli::Cli;
use crate::config::{RunConfig, UsageError};
use crate::launch::ServerSpec;

/// Keys a scenario may not set: they belong to the matrix command or its outputs.
const MATRIX_KEYS: [&str; 10] = [
    "json",
    "hgrm",
    "hlog",
    "hlog-interval",
    "html",
    "markdown",
    "quiet",
    "repeat",
    "isolate",
    "trace",
];

/// The other half of an on/off pair of flags: `pin` and `no-pin`, `server-reuseport` and
/// `server-no-reuseport`.
fn opposite(key: &str) -> String {
    if let Some(rest) = key.strip_prefix("server-no-") {
        format!("server-{rest}")
    } else if let Some(rest) = key.strip_prefix("server-") {
        format!("server-no-{rest}")
    } else if let Some(rest) = key.strip_prefix("no-") {
        rest.to_string()
    } else {
        format!("no-{key}")
    }
}

type Keys = BTreeMap<Spanned<String>, Spanned<toml::Value>>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    defaults: Keys,
    #[serde(default)]
    scenario: Vec<Spanned<Keys>>,
}

/// One scenario, ready to run.
#[derive(Clone, Debug)]
pub struct Scenario {
    pub name: String,
    /// The `tcpbench run` flags it stands for, as a user would type them (a server's
    /// `--target` with its `{port}` placeholder).
    pub args: Vec<String>,
    pub config: RunConfig,
    /// The real server it starts and loads (`server.*` keys), instead of the embedded one.
    pub server: Option<ServerSpec>,
}

/// Options the matrix command adds to every scenario.
#[derive(Clone, Debug, Default)]
pub struct Common {
    pub isolate: bool,
    pub target: Option<String>,
    pub allow_remote: bool,
}

/// Reads and checks every scenario of `path` before any runs.
pub fn load(path: &Path, common: &Common) -> Result<Vec<Scenario>, UsageError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| UsageError(format!("cannot read {shown}: {e}")))?;
    parse(&text, &shown, common)
}

/// Parses scenario file `text`; `origin` names it in errors.
pub fn parse(text: &str, origin: &str, common: &Common) -> Result<Vec<Scenario>, UsageError> {
    let line = |offset: usize| text[..offset.min(text.len())].matches('\n').count() + 1;
    let file: File = toml::from_str(text).map_err(|e| {
        let at = e
            .span()
            .map(|s| format!(":{}", line(s.start)))
            .unwrap_or_default();
        UsageError(format!("{origin}{at}: {}", e.message().trim()))
    })?;
    if file.scenario.is_empty() {
        return Err(UsageError(format!(
            "{origin}: no scenarios; add [[scenario]] tables with a name and run options"
        )));
    }
    let flags = run_flags();
    // `{fill:PATH}` templates are found beside the scenario file.
    let base = Path::new(origin).parent().unwrap_or(Path::new(""));
    let mut seen = Vec::new();
    let mut out = Vec::new();
    for (index, s) in file.scenario.iter().enumerate() {
        let at = |offset: usize| format!("{origin}:{}", line(offset));
        let keys = s.get_ref();
        let name = keys
            .iter()
            .find(|(k, _)| k.get_ref() == "name")
            .ok_or_else(|| {
                UsageError(format!(
                    "{}: a scenario without a name; add name = \"…\"",
                    at(s.span().start)
                ))
            })?;
        let name = match name.1.get_ref() {
            toml::Value::String(n) if !n.trim().is_empty() => n.clone(),
            _ => {
                return Err(UsageError(format!(
                    "{}: key `name`: give the scenario a name, as a string",
                    at(name.1.span().start)
                )));
            }
        };
        if seen.contains(&name) {
            return Err(UsageError(format!(
                "{}: key `name`: a second scenario called \"{name}\"; names must differ",
                at(s.span().start)
            )));
        }
        seen.push(name.clone());
        // The scenario's own keys over the defaults.
        let mut merged: BTreeMap<&str, &Spanned<toml::Value>> = BTreeMap::new();
        for (k, v) in file.defaults.iter() {
            merged.insert(k.get_ref().as_str(), v);
        }
        for (k, v) in keys.iter() {
            // A scenario's `no-pin` replaces the defaults' `pin`, not joins it.
            merged.remove(opposite(k.get_ref()).as_str());
            merged.insert(k.get_ref().as_str(), v);
        }
        merged.remove("name");
        let server = merged.remove("server").map(|_| {
            let (d, own) = (server_table(&file.defaults), server_table(keys));
            server::spec(d.map(|v| v.get_ref()), own.map(|v| v.get_ref()), base).map_err(
                |(key, why)| {
                    // Placed at the key in the scenario, else in [defaults].
                    let place = server::offset(text, Some(index), &key)
                        .filter(|_| own.is_some())
                        .or_else(|| server::offset(text, None, &key))
                        .unwrap_or(s.span().start);
                    UsageError(format!(
                        "{} (scenario \"{name}\"): key `{key}`: {why}",
                        at(place)
                    ))
                },
            )
        });
        let server = server.transpose()?.flatten();
        if server.is_some() {
            conflicts_with_server(&merged, common, &name, s.span().start)
                .map_err(|(offset, why)| UsageError(format!("{}{why}", at(offset))))?;
        }
        let mut args: Vec<(String, &str, usize)> = Vec::new();
        for (key, value) in &merged {
            let place = at(value.span().start);
            for flag in to_flags(key, value.get_ref(), &flags)
                .map_err(|why| UsageError(format!("{place}: key `{key}`: {why}")))?
            {
                args.push((flag, key, value.span().start));
            }
        }
        let mut argv: Vec<String> = args.iter().map(|(a, _, _)| a.clone()).collect();
        if common.isolate {
            argv.push("--isolate".into());
        }
        if let Some(t) = &common.target {
            crate::cli::resolve::isolated_target(common.isolate, Some(t))?;
            argv.extend(["--target".into(), t.clone()]);
        }
        if let Some(spec) = &server {
            argv.extend(["--target".into(), spec.ready.clone()]);
        }
        if common.allow_remote {
            argv.push("--allow-remote".into());
        }
        // A server's port is chosen at each start: any port stands in for it here.
        let stand_in = |a: &str| a.replace("{port}", "1");
        let parsed: Vec<String> = argv.iter().map(|a| stand_in(a)).collect();
        // Place a flag's error at the key that gave the flag; the server's `--target` is
        // its `server.ready`.
        let blame = |msg: &str| {
            let ready = server
                .as_ref()
                .filter(|_| msg.contains("--target"))
                .map(|spec| {
                    let offset = server::offset(text, Some(index), "server.ready")
                        .or_else(|| server::offset(text, None, "server.ready"))
                        .unwrap_or(s.span().start);
                    let msg = msg.replace(&stand_in(&spec.ready), &spec.ready);
                    (" key `server.ready`:".to_string(), offset, msg)
                });
            let (key, offset, msg) = ready.unwrap_or_else(|| {
                args.iter()
                    .find(|(_, k, _)| msg.contains(&format!("--{k}")))
                    .map(|(_, k, o)| (format!(" key `{k}`:"), *o, msg.to_string()))
                    .unwrap_or((String::new(), s.span().start, msg.to_string()))
            });
            UsageError(format!("{} (scenario \"{name}\"):{key} {msg}", at(offset)))
        };
        let config = crate::cli::resolve::from_flags(&parsed).map_err(|e| blame(&e.0))?;
        out.push(Scenario {
            name,
            args: argv,
            config,
            server,
        });
    }
    Ok(out)
}

/// The value of a `server` key among `keys`.
fn server_table(keys: &Keys) -> Option<&Spanned<toml::Value>> {
    keys.iter()
        .find(|(k, _)| k.get_ref() == "server")
        .map(|(_, v)| v)
}

/// What a scenario that starts its own server may not also set: another target, or the
/// embedded server's options. The error's offset and text (after the file name).
fn conflicts_with_server(
    merged: &BTreeMap<&str, &Spanned<toml::Value>>,
    common: &Common,
    name: &str,
    start: usize,
) -> Result<(), (usize, String)> {
    let own = "starts its own server (server.command) and loads it";
    if let Some(v) = merged.get("target") {
        let why = format!(" (scenario \"{name}\"): key `target`: this scenario {own}; drop target");
        return Err((v.span().start, why));
    }
    if let Some((k, v)) = merged.iter().find(|(k, _)| k.starts_with("server-")) {
        let why = format!(
            " (scenario \"{name}\"): key `{k}`: configures the embedded server, and this scenario {own}; drop {k}"
        );
        return Err((v.span().start, why));
    }
    if common.target.is_some() {
        let why = format!(
            " (scenario \"{name}\"): --target: this scenario {own}; drop --target or its server keys"
        );
        return Err((start, why));
    }
    Ok(())
}

/// What a flag of `tcpbench run` takes.
#[derive(Copy, Clone, Debug, PartialEq)]
enum Takes {
    Nothing,
    /// One value; a TOML array becomes one comma-separated value (`--bind a,b`).
    One,
    /// One value per use; a TOML array repeats the flag (`--sysctl`).
    Each,
}

/// The long flags of `tcpbench run`, and what each takes.
fn run_flags() -> BTreeMap<String, Takes> {
    let cmd = Cli::command();
    let run = cmd.find_subcommand("run").expect("run is a subcommand");
    run.get_arguments()
        .filter_map(|a| {
            let takes = match a.get_action() {
                clap::ArgAction::Append => Takes::Each,
                action if action.takes_values() => Takes::One,
                _ => Takes::Nothing,
            };
            Some((a.get_long()?.to_string(), takes))
        })
        .collect()
}

/// The flags one key stands for.
fn to_flags(
    key: &str,
    value: &toml::Value,
    flags: &BTreeMap<String, Takes>,
) -> Result<Vec<String>, String> {
    if MATRIX_KEYS.contains(&key) {
        return Err(format!(
            "set by the matrix command itself (tcpbench matrix --{key}), not per scenario"
        ));
    }
    let Some(&takes) = flags.get(key) else {
        return Err("not a `tcpbench run` option (see tcpbench run --help)".into());
    };
    let flag = format!("--{key}");
    if takes == Takes::Nothing {
        let toml::Value::Boolean(on) = value else {
            return Err(format!("{flag} is on or off: write {key} = true or false"));
        };
        if *on {
            return Ok(vec![flag]);
        }
        // Off: the flag's negative form when there is one, else nothing (off is the default).
        let negative = match key.strip_prefix("server-") {
            Some(rest) => format!("server-no-{rest}"),
            None => format!("no-{key}"),
        };
        return Ok(if flags.contains_key(&negative) {
            vec![format!("--{negative}")]
        } else {
            vec![]
        });
    }
    let scalar = |v: &toml::Value| -> Result<String, String> {
        match v {
            toml::Value::String(s) => Ok(s.clone()),
            toml::Value::Integer(i) => Ok(i.to_string()),
            toml::Value::Float(f) => Ok(f.to_string()),
            toml::Value::Datetime(d) => Ok(d.to_string()),
            toml::Value::Boolean(_) => Err(format!("{flag} takes a value, not true/false")),
            _ => Err(format!("{flag} takes one value (a string or a number)")),
        }
    };
    match value {
        toml::Value::Array(items) if takes == Takes::Each => items
            .iter()
            .map(|v| Ok(format!("{flag}={}", scalar(v)?)))
            .collect(),
        toml::Value::Array(items) => {
            let values = items
                .iter()
                .map(scalar)
                .collect::<Result<Vec<_>, String>>()?;
            Ok(vec![format!("{flag}={}", values.join(","))])
        }
        toml::Value::Table(t) if key == "sysctl" => t
            .iter()
            .map(|(name, v)| Ok(format!("{flag}={name}={}", scalar(v)?)))
            .collect(),
        // `--key=value`: a value that starts with '-' stays a value.
        v => Ok(vec![format!("{flag}={}", scalar(v)?)]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenarios(text: &str) -> Result<Vec<Scenario>, String> {
        parse(text, "s.toml", &Common::default()).map_err(|e| e.0)
    }

    #[test]
    fn scenarios_are_run_flags_over_defaults() {
        let s = scenarios(
            r#"
[defaults]
conns = 500
concurrency = 4

[[scenario]]
name = "client"
close = "client"

[[scenario]]
name = "rst, small backlog"
close = "rst"
concurrency = 8
server-backlog = 5
server-reuseport = false
bind = ["127.0.0.2", "127.0.0.3"]
"#,
        )
        .unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].config.bounds.conns, Some(500));
        assert_eq!(s[0].config.load.concurrency(), 4);
        assert_eq!(s[1].name, "rst, small backlog");
        assert_eq!(s[1].config.load.concurrency(), 8);
        assert_eq!(s[1].config.socket.bind.len(), 2);
        let crate::config::Target::Embedded(server) = &s[1].config.target else {
            panic!("embedded")
        };
        assert_eq!(server.backlog, 5);
        assert!(!server.reuseport);
        assert!(s[1].args.contains(&"--server-no-reuseport".to_string()));
    }

    #[test]
    fn errors_name_the_file_line_and_key() {
        for (text, says) in [
            (
                "[[scenario]]\nname = \"a\"\nclose = \"sideways\"\n",
                "s.toml:3 (scenario \"a\"): key `close`: invalid value 'sideways'",
            ),
            (
                "[[scenario]]\nname = \"a\"\n\nconns = \"many\"\n",
                "s.toml:4 (scenario \"a\"): key `conns`",
            ),
            (
                "[[scenario]]\nname = \"a\"\ncolse = \"rst\"\n",
                "s.toml:3: key `colse`: not a `tcpbench run` option",
            ),
            (
                "[[scenario]]\nname = \"a\"\njson = \"x\"\n",
                "s.toml:3: key `json`: set by the matrix command",
            ),
            (
                "[[scenario]]\nclose = \"rst\"\n",
                "s.toml:1: a scenario without a name",
            ),
            (
                "[[scenario]]\nname = \"a\"\n[[scenario]]\nname = \"a\"\n",
                "s.toml:3: key `name`: a second scenario",
            ),
            (
                "[[scenario]]\nname = \"a\"\nreuseaddr = 1\n",
                "s.toml:3: key `reuseaddr`: --reuseaddr is on or off",
            ),
            (
                "[[scenario]]\nname = \"a\"\nsysctl = { \"net.ipv4.tcp_tw_reuse\" = 0 }\n",
                "s.toml:3 (scenario \"a\"): key `sysctl`: --sysctl would change the host's settings",
            ),
            ("[[scenario]\nname = 1", "s.toml:1:"),
            ("[defaults]\nconns = 5\n", "no scenarios"),
            (
                "[[scenario]]\nname = \"a\"\nconns = -1\n",
                "s.toml:3 (scenario \"a\"): key `conns`: invalid value '-1'",
            ),
            (
                "[[scenario]]\nname = \"a\"\ntrace = true\n",
                "s.toml:3: key `trace`: set by the matrix command",
            ),
            (
                "[[scenario]]\nname = \"a\"\n[extra]\n",
                "s.toml:3: unknown field `extra`",
            ),
        ] {
            let e = scenarios(text).unwrap_err();
            assert!(e.contains(says), "{text:?}\n  got: {e}\n  want: {says}");
            assert_eq!(e.lines().count(), 1, "{e}");
        }
    }

    #[test]
    fn a_scenario_switch_replaces_its_opposite_in_the_defaults() {
        let s = scenarios(
            "[defaults]\npin = true\nserver-reuseport = true\n\n[[scenario]]\nname = \"a\"\nno-pin = true\nserver-no-reuseport = true\nstart-at = 2026-11-25T04:00:00Z\n",
        )
        .unwrap();
        assert!(!s[0].config.pin, "{:?}", s[0].args);
        let crate::config::Target::Embedded(server) = &s[0].config.target else {
            panic!("embedded")
        };
        assert!(!server.reuseport, "{:?}", s[0].args);
        assert!(s[0].config.start_at.is_some());
    }

    #[test]
    fn a_server_scenario_loads_its_server_and_errors_name_the_server_keys() {
        let s = scenarios(
            r#"
[defaults]
requests = 0
server.command = ["sleep", "30"]
server.stop = "SIGINT"

[[scenario]]
name = "own ready"
[scenario.server]
ready = "127.0.0.1:18080"
ready-timeout = "2s"

[[scenario]]
name = "embedded"
server = {}
"#,
        );
        // `server = {}` keeps the defaults' server: both scenarios start one.
        let s = s.unwrap();
        let spec = s[0].server.as_ref().unwrap();
        assert_eq!(spec.command, ["sleep", "30"]);
        assert_eq!(spec.ready, "127.0.0.1:18080");
        assert_eq!(spec.stop, crate::launch::Signal::Int);
        assert_eq!(spec.ready_timeout, std::time::Duration::from_secs(2));
        assert!(
            s[0].args
                .ends_with(&["--target".into(), "127.0.0.1:18080".into()])
        );
        assert_eq!(s[1].server.as_ref().unwrap().ready, "127.0.0.1:{port}");
        assert!(
            s[1].args.contains(&"127.0.0.1:{port}".to_string()),
            "{:?}",
            s[1].args
        );
        assert!(matches!(
            s[1].config.target,
            crate::config::Target::External(_)
        ));
        for (text, says) in [
            (
                "[[scenario]]\nname = \"a\"\nserver.command = [\"x\"]\nserver.stop = \"SIGSTOP\"\n",
                "s.toml:4 (scenario \"a\"): key `server.stop`: 'SIGSTOP' is not a stop signal",
            ),
            (
                "[defaults]\nserver.ready = \"x:1\"\n\n[[scenario]]\nname = \"a\"\n",
                "s.toml:2 (scenario \"a\"): key `server`: server.command is missing",
            ),
            (
                "[[scenario]]\nname = \"a\"\ntarget = \"127.0.0.1:9\"\nserver.command = [\"x\"]\n",
                "s.toml:3 (scenario \"a\"): key `target`: this scenario starts its own server",
            ),
            (
                "[[scenario]]\nname = \"a\"\nserver.command = [\"x\"]\nserver-backlog = 5\n",
                "s.toml:4 (scenario \"a\"): key `server-backlog`: configures the embedded server",
            ),
            (
                "[[scenario]]\nname = \"a\"\n[scenario.server]\ncommand = [\"x\"]\nreddy = 1\n",
                "s.toml:5 (scenario \"a\"): key `server.reddy`: not a server key",
            ),
            (
                "[[scenario]]\nname = \"a\"\nserver.command = [\"x\"]\nserver.ready = \"10.1.2.3:{port}\"\n",
                "s.toml:4 (scenario \"a\"): key `server.ready`: --target 10.1.2.3:{port} is not on this host",
            ),
        ] {
            let e = scenarios(text).unwrap_err();
            assert!(e.contains(says), "{text:?}\n  got: {e}\n  want: {says}");
            assert_eq!(e.lines().count(), 1, "{e}");
        }
        let common = Common {
            target: Some("127.0.0.1:9".into()),
            ..Common::default()
        };
        let e = parse(
            "[[scenario]]\nname = \"a\"\nserver.command = [\"x\"]\n",
            "s.toml",
            &common,
        )
        .unwrap_err();
        assert!(
            e.0.contains("--target: this scenario starts its own server"),
            "{}",
            e.0
        );
    }

    #[test]
    fn the_shipped_scenario_files_parse() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("reports/scenarios");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let common = Common {
                isolate: true,
                ..Common::default()
            };
            let s = load(&path, &common).unwrap_or_else(|e| panic!("{}", e.0));
            assert!(s.len() >= 2, "{}", path.display());
            n += 1;
        }
        assert!(n >= 4);
    }
}
