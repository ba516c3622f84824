//! A scenario's `server` keys: the real server it starts ([`ServerSpec`]), from the
//! scenario's `server.*` keys over those of `[defaults]`, each error placed at its key.
//!
//! ```toml
//! [defaults]
//! server.command = ["nginx", "-p", "{dir}", "-c", "{config}", "-e", "{dir}/error.log",
//!                   "-g", "daemon off;"]
//! server.config = "../servers/nginx-backlog511.conf"   # {config} = {fill:THIS}
//! server.ready = "127.0.0.1:{port}"   # the default
//! server.ready-timeout = "10s"        # the default
//! server.stop = "SIGTERM"             # the default; SIGKILL after server.stop-grace (5s)
//! ```

use std::path::Path;

use crate::launch::{ServerSpec, Signal};

/// The keys a `server` table takes.
pub const KEYS: [&str; 6] = [
    "command",
    "config",
    "ready",
    "ready-timeout",
    "stop",
    "stop-grace",
];

/// A key's error: the key (`server.ready`) and why.
pub type KeyError = (String, String);

/// The spec of `defaults` and `own` server tables (either may be absent), the scenario's keys
/// replacing the defaults' one by one; `None` when neither names a command or any key.
pub fn spec(
    defaults: Option<&toml::Value>,
    own: Option<&toml::Value>,
    base: &Path,
) -> Result<Option<ServerSpec>, KeyError> {
    let mut keys = toml::Table::new();
    for table in [defaults, own].into_iter().flatten() {
        let toml::Value::Table(t) = table else {
            return Err((
                "server".into(),
                "give the server as a table: server.command = [\"nginx\", …]".into(),
            ));
        };
        keys.extend(t.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    if keys.is_empty() {
        return Ok(None);
    }
    let key = |k: &str| format!("server.{k}");
    let string = |k: &str, v: &toml::Value| -> Result<String, KeyError> {
        v.as_str()
            .map(str::to_string)
            .ok_or_else(|| (key(k), "give it as a string".into()))
    };
    let duration = |k: &str, v: &toml::Value| -> Result<std::time::Duration, KeyError> {
        crate::parse::duration(&string(k, v)?).map_err(|e| (key(k), e))
    };
    let Some(command) = keys.get("command") else {
        return Err((
            "server".into(),
            "server.command is missing; give the program to start: server.command = [\"nginx\", …]"
                .into(),
        ));
    };
    let mut words = command_of(command).map_err(|e| (key("command"), e))?;
    // `{config}`: one command over [defaults], a configuration file per scenario.
    let uses = words.iter().any(|w| w.contains("{config}"));
    match keys.get("config") {
        Some(v) if uses => {
            let fill = format!("{{fill:{}}}", string("config", v)?);
            for w in &mut words {
                *w = w.replace("{config}", &fill);
            }
        }
        Some(_) => {
            return Err((
                key("config"),
                "server.command does not use it; put {config} where the file's path goes".into(),
            ));
        }
        None if uses => {
            return Err((
                key("command"),
                "it uses {config}; set server.config = \"PATH\" (a template, as in reports/servers/)"
                    .into(),
            ));
        }
        None => {}
    }
    let mut spec = ServerSpec::new(words);
    spec.base = base.to_path_buf();
    for (k, v) in &keys {
        match k.as_str() {
            "command" | "config" => {}
            "ready" => spec.ready = string(k, v)?,
            "ready-timeout" => spec.ready_timeout = duration(k, v)?,
            "stop-grace" => spec.grace = duration(k, v)?,
            "stop" => spec.stop = Signal::parse(&string(k, v)?).map_err(|e| (key(k), e))?,
            _ => {
                return Err((
                    key(k),
                    format!(
                        "not a server key; the keys are server.{}",
                        KEYS.join(", server.")
                    ),
                ));
            }
        }
    }
    if spec.ready_timeout.is_zero() {
        return Err((
            key("ready-timeout"),
            "give the server some time to listen, e.g. 10s".into(),
        ));
    }
    spec.check().map_err(|e| {
        let k = if e.starts_with("ready") {
            "ready"
        } else {
            "command"
        };
        (key(k), e)
    })?;
    Ok(Some(spec))
}

/// `["nginx", "-g", "daemon off;"]`, or one string split as a shell splits simple words.
fn command_of(v: &toml::Value) -> Result<Vec<String>, String> {
    let words = match v {
        toml::Value::String(s) => crate::ab::split_args(s)?,
        toml::Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or("give the program and its arguments as an array of strings")?,
        _ => return Err("give the program and its arguments as an array of strings".into()),
    };
    if words.is_empty() {
        return Err("the command is empty; give the program and its arguments".into());
    }
    Ok(words)
}

/// Where `server.KEY` (or the `server` table itself, for key `server`) is written in
/// scenario `index`, or in `[defaults]` for `None`: an offset into `text`.
pub fn offset(text: &str, index: Option<usize>, key: &str) -> Option<usize> {
    use toml::de::{DeTable, DeValue};
    let root = DeTable::parse(text).ok()?;
    let (_, holder) = match index {
        None => field(root.get_ref(), "defaults")?,
        Some(i) => {
            let (_, all) = field(root.get_ref(), "scenario")?;
            let DeValue::Array(all) = all.into_inner() else {
                return None;
            };
            let item = all.into_iter().nth(i)?;
            (item.span().start, item)
        }
    };
    let DeValue::Table(holder) = holder.into_inner() else {
        return None;
    };
    let (at, server) = field(&holder, "server")?;
    match (key.strip_prefix("server."), server.get_ref()) {
        (Some(k), DeValue::Table(t)) => field(t, k).map(|(at, _)| at).or(Some(at)),
        _ => Some(at),
    }
}

/// Key `name` of `t`: where the key is written, and its value.
fn field<'i>(
    t: &toml::de::DeTable<'i>,
    name: &str,
) -> Option<(usize, toml::Spanned<toml::de::DeValue<'i>>)> {
    t.iter()
        .find(|(k, _)| k.get_ref().as_ref() == name)
        .map(|(k, v)| (k.span().start, v.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> toml::Value {
        toml::Value::Table(text.parse::<toml::Table>().unwrap())
    }

    #[test]
    fn keys_over_defaults_one_by_one() {
        let d = table("command = [\"nginx\", \"-g\", \"daemon off;\"]\nstop = \"SIGQUIT\"\n");
        let own = table("ready = \"127.0.0.1:8080\"\nstop-grace = \"1s\"\n");
        let s = spec(Some(&d), Some(&own), Path::new("x")).unwrap().unwrap();
        assert_eq!(s.command, ["nginx", "-g", "daemon off;"]);
        assert_eq!(s.stop, Signal::Quit);
        assert_eq!(s.ready, "127.0.0.1:8080");
        assert_eq!(s.grace, std::time::Duration::from_secs(1));
        assert_eq!(s.ready_timeout, crate::launch::DEFAULT_READY_TIMEOUT);
        let s = spec(
            None,
            Some(&table("command = \"redis-server --port {port}\"")),
            Path::new(""),
        )
        .unwrap()
        .unwrap();
        assert_eq!(s.command, ["redis-server", "--port", "{port}"]);
        assert_eq!(spec(None, None, Path::new("")).unwrap(), None);
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("reports/scenarios");
        let d = table("command = [\"nginx\", \"-c\", \"{config}\"]");
        let own = table("config = \"../servers/nginx-reuseport.conf\"");
        let s = spec(Some(&d), Some(&own), &dir).unwrap().unwrap();
        assert_eq!(s.command[2], "{fill:../servers/nginx-reuseport.conf}");
    }

    #[test]
    fn each_error_names_its_key() {
        for (text, key, says) in [
            (
                "ready = \"127.0.0.1:1\"",
                "server",
                "server.command is missing",
            ),
            ("command = 5", "server.command", "array of strings"),
            ("command = []", "server.command", "command is empty"),
            (
                "command = [\"a\"]\nready = \"nowhere\"",
                "server.ready",
                "has no port",
            ),
            (
                "command = [\"a\"]\nstop = \"SIGSTOP\"",
                "server.stop",
                "not a stop signal",
            ),
            (
                "command = [\"a\"]\nready-timeout = 5",
                "server.ready-timeout",
                "as a string",
            ),
            (
                "command = [\"a\"]\nready-timeout = \"5\"",
                "server.ready-timeout",
                "has no unit",
            ),
            (
                "command = [\"a\"]\nready-timeout = \"0s\"",
                "server.ready-timeout",
                "some time",
            ),
            (
                "command = [\"a\"]\nreddy = \"x\"",
                "server.reddy",
                "not a server key",
            ),
            (
                "command = [\"a\", \"{fill:no.conf}\"]",
                "server.command",
                "cannot read",
            ),
            (
                "command = [\"a\", \"{config}\"]",
                "server.command",
                "set server.config",
            ),
            (
                "command = [\"a\"]\nconfig = \"x.conf\"",
                "server.config",
                "does not use it",
            ),
            (
                "command = [\"a\", \"{config}\"]\nconfig = \"no.conf\"",
                "server.command",
                "{fill:no.conf}: cannot read",
            ),
        ] {
            let (k, why) = spec(None, Some(&table(text)), Path::new("/nonexistent")).unwrap_err();
            assert_eq!(k, key, "{text}");
            assert!(why.contains(says), "{text}: {why}");
        }
        let (k, _) = spec(None, Some(&toml::Value::Boolean(true)), Path::new("")).unwrap_err();
        assert_eq!(k, "server");
    }

    #[test]
    fn keys_are_found_in_the_text() {
        let text = "[defaults]\nserver.command = [\"a\"]\n\n[[scenario]]\nname = \"x\"\n\n[[scenario]]\nname = \"y\"\n[scenario.server]\ncommand = [\"b\"]\nready = \"r\"\n";
        let line = |o: Option<usize>| text[..o.unwrap()].matches('\n').count() + 1;
        assert_eq!(line(offset(text, None, "server.command")), 2);
        assert_eq!(line(offset(text, Some(1), "server.ready")), 11);
        assert_eq!(line(offset(text, Some(1), "server.stop")), 9);
        assert_eq!(offset(text, Some(0), "server.ready"), None);
    }
}
