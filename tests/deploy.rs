//! Lints the distributed-run recipes in deploy/. Every YAML document of deploy/k8s parses, and
//! the fields the Kubernetes recipe relies on agree with one another: the agents Job's
//! completions, parallelism and --agents; its --agent-index, --start-at and --json; its
//! --target and the Service; the Service and the server it selects; the report volume the
//! agents write to and the merge step reads. The checks work on the files' text, so the tests
//! at the end break a copy of it on purpose and expect the lint to say so. The flags the
//! manifests pass must be in the binary's --help, and deploy/ssh-fanout.sh must pass `bash -n`
//! (and shellcheck, where it is installed). The manifests must also validate against the
//! Kubernetes API schemas: `kubernetes-validate --strict` from PyPI, installed into a venv of
//! this test's own under target/ (its schemas ship in the package, so it checks offline).
//! Shellcheck is a visible skip where it is not installed, a failure under CI.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use yaml_rust2::{Yaml, YamlLoader};

const DEPLOY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy");
/// The env var the Job controller sets to a pod's index in an Indexed Job, and its source.
const INDEX_VAR: &str = "JOB_COMPLETION_INDEX";
const INDEX_KEY: &str = "batch.kubernetes.io/job-completion-index";
/// `tcpbench` flags that take no value, so the word after them is not theirs.
const SWITCHES: &[&str] = &["--allow-remote", "--quiet", "-q", "--reuseport", "--force"];

/// deploy/k8s/*.yaml as (file name, text), by name.
fn manifest_files() -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = std::fs::read_dir(Path::new(DEPLOY).join("k8s"))
        .expect("deploy/k8s exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&p).unwrap())
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no manifests in deploy/k8s");
    files
}

fn s(y: &Yaml) -> Option<&str> {
    y.as_str()
}

/// One YAML document and the file it came from.
struct Doc {
    file: String,
    y: Yaml,
}

impl Doc {
    fn kind(&self) -> &str {
        s(&self.y["kind"]).unwrap_or_default()
    }

    /// The pod spec of a Pod, or of a Deployment's or Job's template.
    fn pod_spec(&self) -> &Yaml {
        match self.kind() {
            "Pod" => &self.y["spec"],
            _ => &self.y["spec"]["template"]["spec"],
        }
    }

    fn pod_labels(&self) -> &Yaml {
        match self.kind() {
            "Pod" => &self.y["metadata"]["labels"],
            _ => &self.y["spec"]["template"]["metadata"]["labels"],
        }
    }

    fn containers(&self) -> &[Yaml] {
        self.pod_spec()["containers"].as_vec().map_or(&[], |v| v)
    }

    /// The claim name and mountPath of the container's PVC mount that holds `path`.
    fn claim_at<'a>(&'a self, container: &'a Yaml, path: &str) -> Option<(&'a str, &'a str)> {
        container["volumeMounts"].as_vec()?.iter().find_map(|m| {
            let dir = s(&m["mountPath"])?.trim_end_matches('/');
            if !path.strip_prefix(dir)?.starts_with('/') {
                return None;
            }
            let volumes = self.pod_spec()["volumes"].as_vec()?;
            let volume = volumes.iter().find(|v| v["name"] == m["name"])?;
            Some((s(&volume["persistentVolumeClaim"]["claimName"])?, dir))
        })
    }
}

/// Where an env var of a container comes from.
#[derive(Debug, PartialEq)]
enum Source {
    /// A literal `value`, already expanded against the entries before it, as the kubelet does.
    Value(String),
    /// The downward API: a fieldRef's fieldPath.
    Field(String),
    /// A ConfigMap's (name, key).
    ConfigMap(String, String),
    Other,
}

/// A container's environment and command line.
struct Container<'a> {
    y: &'a Yaml,
    env: HashMap<String, Source>,
    /// command + args, with `$(VAR)` of literal values expanded; other references stay as
    /// they are, as in a pod.
    words: Vec<String>,
    /// `--flag[=value]` of the args, in order.
    flags: Vec<(String, Option<String>)>,
    /// Entries that are not strings (Kubernetes rejects a bare number in args).
    bad_words: Vec<String>,
}

impl<'a> Container<'a> {
    fn new(y: &'a Yaml) -> Container<'a> {
        let mut env = HashMap::new();
        for e in y["env"].as_vec().into_iter().flatten() {
            let name = s(&e["name"]).unwrap_or_default().to_string();
            let from = &e["valueFrom"];
            let src = if let Some(v) = s(&e["value"]) {
                Source::Value(expand(&env, v))
            } else if let Some(f) = s(&from["fieldRef"]["fieldPath"]) {
                Source::Field(f.to_string())
            } else if let Some(cm) = s(&from["configMapKeyRef"]["name"]) {
                let key = s(&from["configMapKeyRef"]["key"]).unwrap_or_default();
                Source::ConfigMap(cm.to_string(), key.to_string())
            } else {
                Source::Other
            };
            env.insert(name, src);
        }
        let mut bad_words = Vec::new();
        let mut words_of = |key: &str| -> Vec<String> {
            let list = y[key].as_vec().into_iter().flatten();
            list.filter_map(|w| {
                let word = s(w).map(|w| expand(&env, w));
                if word.is_none() {
                    bad_words.push(format!("{key}: {w:?}"));
                }
                word
            })
            .collect()
        };
        let command = words_of("command");
        let args = words_of("args");
        let flags = flags(&args);
        let words = command.into_iter().chain(args).collect();
        Container {
            y,
            env,
            words,
            flags,
            bad_words,
        }
    }

    fn flag(&self, name: &str) -> Option<&str> {
        let found = self.flags.iter().find(|(f, _)| f == name);
        found.map(|(_, v)| v.as_deref().unwrap_or(""))
    }

    /// The env var a `$(NAME)` word refers to, with its source.
    fn var<'w>(&self, word: &'w str) -> Option<(&'w str, Option<&Source>)> {
        let name = word.strip_prefix("$(")?.strip_suffix(')')?;
        Some((name, self.env.get(name)))
    }

    fn script(&self) -> String {
        self.words.join(" ")
    }
}

fn expand(env: &HashMap<String, Source>, text: &str) -> String {
    let mut out = text.to_string();
    for (name, src) in env {
        if let Source::Value(v) = src {
            out = out.replace(&format!("$({name})"), v);
        }
    }
    out
}

/// `--flag=value`, `--flag value` and bare switches, in order.
fn flags(words: &[String]) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    let mut it = words.iter().peekable();
    while let Some(w) = it.next() {
        if !w.starts_with('-') {
            continue;
        }
        if let Some((f, v)) = w.split_once('=') {
            out.push((f.to_string(), Some(v.to_string())));
        } else if !SWITCHES.contains(&w.as_str())
            && let Some(v) = it.next_if(|v| !v.starts_with('-'))
        {
            out.push((w.clone(), Some(v.clone())));
        } else {
            out.push((w.clone(), None));
        }
    }
    out
}

/// Every key of `want` has the same value in `have`: a label selector matching labels.
fn selects(want: &Yaml, have: &Yaml) -> bool {
    let matches = |w: &yaml_rust2::yaml::Hash| {
        !w.is_empty() && w.iter().all(|(k, v)| have[s(k).unwrap_or_default()] == *v)
    };
    want.as_hash().is_some_and(matches)
}

/// The parsed recipe and the problems found so far.
struct Lint {
    docs: Vec<Doc>,
    problems: Vec<String>,
}

impl Lint {
    fn parse(files: &[(String, String)]) -> Lint {
        let mut lint = Lint {
            docs: Vec::new(),
            problems: Vec::new(),
        };
        for (file, text) in files {
            let docs = match YamlLoader::load_from_str(text) {
                Ok(docs) => docs,
                Err(e) => {
                    lint.problems.push(format!("{file}: not YAML: {e}"));
                    continue;
                }
            };
            let docs: Vec<Yaml> = docs.into_iter().filter(|y| !y.is_null()).collect();
            if docs.is_empty() {
                lint.problems.push(format!("{file}: no document"));
            }
            for y in docs {
                for field in ["apiVersion", "kind"] {
                    if s(&y[field]).is_none() {
                        lint.problems
                            .push(format!("{file}: a document has no {field}"));
                    }
                }
                if s(&y["metadata"]["name"]).is_none() {
                    lint.problems
                        .push(format!("{file}: a document has no metadata.name"));
                }
                let file = file.clone();
                lint.docs.push(Doc { file, y });
            }
        }
        lint
    }

    fn named(&self, kind: &str, name: &str) -> Option<&Doc> {
        let is = |d: &&Doc| d.kind() == kind && s(&d.y["metadata"]["name"]) == Some(name);
        self.docs.iter().find(is)
    }

    /// The one document `is` picks, or a problem saying how many there were.
    fn one(&mut self, what: &str, is: impl Fn(&Doc) -> bool) -> Option<usize> {
        let found: Vec<usize> = (0..self.docs.len())
            .filter(|&i| is(&self.docs[i]))
            .collect();
        if found.len() != 1 {
            let n = found.len();
            self.problems
                .push(format!("expected one {what}, found {n}"));
        }
        found.first().copied()
    }
}

/// A container whose command line starts `tcpbench SUB` (the image's entrypoint) or runs it
/// from a shell.
fn runs(c: &Yaml, sub: &str) -> bool {
    s(&c["args"][0]) == Some(sub) || format!("{c:?}").contains(&format!("tcpbench {sub}"))
}

/// Pushes `file: message` onto a list of problems.
macro_rules! bad {
    ($p:expr, $file:expr, $($msg:tt)+) => {
        $p.push(format!("{}: {}", $file, format!($($msg)+)))
    };
}

/// All the recipe's problems, one line each; none when the files agree.
fn problems(files: &[(String, String)]) -> Vec<String> {
    let mut lint = Lint::parse(files);
    let indexed =
        |d: &Doc| d.kind() == "Job" && s(&d.y["spec"]["completionMode"]) == Some("Indexed");
    let job = lint.one("Indexed Job (the agents)", indexed);
    let server = lint.one("workload running `tcpbench serve`", |d| {
        d.containers().iter().any(|c| runs(c, "serve"))
    });
    let merge = lint.one("Job running `tcpbench merge`", |d| {
        d.kind() == "Job" && d.containers().iter().any(|c| runs(c, "merge"))
    });
    let mut p = std::mem::take(&mut lint.problems);
    if let (Some(job), Some(server), Some(merge)) = (job, server, merge)
        && let Some(agents) = check_agents(&lint, &lint.docs[job], &mut p)
    {
        check_target(&lint, &agents, &lint.docs[server], &mut p);
        check_merge(&agents, &lint.docs[merge], &mut p);
    }
    p
}

/// What the agents Job gives each pod, for the checks of what they connect to and write.
struct Agents<'a> {
    file: &'a str,
    /// completions
    n: Option<i64>,
    c: Container<'a>,
    /// --json, expanded
    report: String,
    /// The claim and mountPath holding --json.
    claim: Option<(&'a str, &'a str)>,
}

/// The agents: N pods at once, each told it is one of N, which one, when to start, and
/// where to write its report.
fn check_agents<'a>(lint: &Lint, job: &'a Doc, p: &mut Vec<String>) -> Option<Agents<'a>> {
    let f = job.file.as_str();
    let spec = &job.y["spec"];
    let n = spec["completions"].as_i64();
    if n.is_none() || n != spec["parallelism"].as_i64() {
        let (c, par) = (&spec["completions"], &spec["parallelism"]);
        bad!(
            p,
            f,
            "completions ({c:?}) and parallelism ({par:?}) must be equal: agents run at once"
        );
    }
    let Some(c) = job.containers().iter().find(|c| runs(c, "run")) else {
        bad!(p, f, "no container runs `tcpbench run`");
        return None;
    };
    let c = Container::new(c);
    for w in &c.bad_words {
        bad!(p, f, "{w} is not a string");
    }
    if c.y["command"].as_vec().is_some() && !c.script().contains("tcpbench \"$@\"") {
        bad!(
            p,
            f,
            "the agent's command must hand its args to tcpbench (tcpbench \"$@\")"
        );
    }
    let index = format!("$({INDEX_VAR})");
    match c.env.get(INDEX_VAR) {
        None => {}
        Some(Source::Field(path)) if path.contains(INDEX_KEY) => {}
        Some(other) => bad!(
            p,
            f,
            "{INDEX_VAR} must come from {INDEX_KEY}, not {other:?}"
        ),
    }
    let agent_index = c.flag("--agent-index");
    if agent_index != Some(index.as_str()) {
        bad!(p, f, "--agent-index is {agent_index:?}, not {index}");
    }
    let agents = c.flag("--agents");
    if agents
        .and_then(|v| v.parse::<i64>().ok())
        .is_none_or(|a| Some(a) != n)
    {
        bad!(
            p,
            f,
            "--agents is {agents:?} but completions is {n:?}: the work would not split in N"
        );
    }
    match c.flag("--start-at") {
        None | Some("") => bad!(p, f, "no --start-at: the agents would not begin together"),
        Some(at) => {
            if let Some((var, None)) = c.var(at) {
                bad!(
                    p,
                    f,
                    "--start-at names $({var}), which the container does not define"
                );
            }
        }
    }
    let id = c.flag("--agent-id").and_then(|id| c.var(id));
    if !matches!(id, Some((_, Some(Source::Field(path)))) if path == "metadata.name") {
        bad!(
            p,
            f,
            "--agent-id must be the pod's name (downward API metadata.name)"
        );
    }
    if c.flag("--allow-remote").is_none() {
        bad!(
            p,
            f,
            "no --allow-remote: a Service address is not on the agent's host"
        );
    }
    let report = c.flag("--json").unwrap_or_default().to_string();
    if !report.contains(&index) {
        bad!(
            p,
            f,
            "--json {report:?} must contain {index}, or the agents share one report"
        );
    }
    let claim = job.claim_at(c.y, &report);
    match claim.map(|(claim, _)| (claim, lint.named("PersistentVolumeClaim", claim))) {
        None => bad!(
            p,
            f,
            "--json {report:?} is not under a PersistentVolumeClaim's mountPath"
        ),
        Some((claim, None)) => bad!(p, f, "the reports' claim {claim} is not in deploy/k8s"),
        Some((claim, Some(pvc))) => {
            if !format!("{:?}", pvc.y["spec"]["accessModes"]).contains("ReadWriteMany") {
                bad!(
                    p,
                    pvc.file,
                    "{claim} must be ReadWriteMany: agents on several nodes write it"
                );
            }
        }
    }
    Some(Agents {
        file: f,
        n,
        c,
        report,
        claim,
    })
}

/// The target: --target names a Service that selects the server's pods and leads to the
/// port it listens on.
fn check_target(lint: &Lint, agents: &Agents, server: &Doc, p: &mut Vec<String>) {
    let target = agents.c.flag("--target").unwrap_or_default();
    let (host, port) = target.rsplit_once(':').unwrap_or((target, ""));
    let name = host.split('.').next().unwrap_or_default();
    let port: Option<i64> = port.parse().ok();
    let serve = server.containers().iter().find(|c| runs(c, "serve"));
    let serve = Container::new(serve.unwrap_or(&Yaml::BadValue));
    let listen = serve
        .flag("--listen")
        .or(serve.flag("-l"))
        .unwrap_or_default();
    let (ip, listen_port) = listen.rsplit_once(':').unwrap_or_default();
    let listen_port: Option<i64> = listen_port.parse().ok();
    let sf = &server.file;
    if !matches!(ip, "0.0.0.0" | "[::]") {
        bad!(
            p,
            sf,
            "serve --listen {listen:?} must be 0.0.0.0 or [::]: a Service comes in on the pod's address"
        );
    }
    let matched = &server.y["spec"]["selector"]["matchLabels"];
    if server.kind() == "Deployment" && !selects(matched, server.pod_labels()) {
        bad!(
            p,
            sf,
            "the Deployment's selector does not match its pod labels"
        );
    }
    let Some(svc) = lint.named("Service", name) else {
        bad!(
            p,
            agents.file,
            "--target {target:?} names no Service in deploy/k8s"
        );
        return;
    };
    if !selects(&svc.y["spec"]["selector"], server.pod_labels()) {
        bad!(
            p,
            svc.file,
            "Service {name} does not select the server's pods"
        );
    }
    let mut ports = svc.y["spec"]["ports"].as_vec().into_iter().flatten();
    let Some(sp) = ports.find(|sp| sp["port"].as_i64() == port) else {
        bad!(
            p,
            agents.file,
            "--target port {port:?} is not a port of Service {name}"
        );
        return;
    };
    let to = match &sp["targetPort"] {
        Yaml::Integer(i) => Some(*i),
        Yaml::String(named) => {
            let mut cports = serve.y["ports"].as_vec().into_iter().flatten();
            let cp = cports.find(|cp| s(&cp["name"]) == Some(named));
            cp.and_then(|cp| cp["containerPort"].as_i64())
        }
        _ => sp["port"].as_i64(),
    };
    if to.is_none() || to != listen_port {
        bad!(
            p,
            svc.file,
            "Service {name} port {port:?} goes to {to:?}, the server listens on {listen_port:?}"
        );
    }
}

/// The merge: the agents' claim, mounted where the merge script reads their reports and
/// writes the merged one, and as many reports expected as there are agents.
fn check_merge(agents: &Agents, merge: &Doc, p: &mut Vec<String>) {
    let f = merge.file.as_str();
    let c = merge.containers().iter().find(|c| runs(c, "merge"));
    let c = Container::new(c.unwrap_or(&Yaml::BadValue));
    let script = c.script();
    if let Some((claim, dir)) = agents.claim {
        let index = format!("$({INDEX_VAR})");
        let pattern = agents
            .report
            .strip_prefix(dir)
            .unwrap_or_default()
            .replace(&index, "*");
        let mut mounts = c.y["volumeMounts"].as_vec().into_iter().flatten();
        let merge_dir = mounts.find_map(|m| {
            let d = s(&m["mountPath"])?.trim_end_matches('/');
            (merge.claim_at(c.y, &format!("{d}/x"))?.0 == claim).then_some(d)
        });
        match merge_dir {
            None => bad!(
                p,
                f,
                "the merge step does not mount {claim}, the agents' claim"
            ),
            Some(d) => {
                if !script.contains(&format!("{d}{pattern}")) {
                    bad!(
                        p,
                        f,
                        "the merge does not read {d}{pattern}, the agents' reports"
                    );
                }
                if !script.contains(&format!("-o {d}/")) {
                    bad!(p, f, "the merged report (-o) is not written under {d}");
                }
            }
        }
    }
    if let Some(Source::Value(v)) = c.env.get("AGENTS")
        && v.parse::<i64>().ok() != agents.n
    {
        bad!(
            p,
            f,
            "AGENTS={v} but the agents Job has completions {:?}",
            agents.n
        );
    }
}

#[test]
fn the_k8s_recipe_is_consistent() {
    let p = problems(&manifest_files());
    assert!(p.is_empty(), "deploy/k8s:\n  {}", p.join("\n  "));
}

/// The recipe with `from` replaced by `to` in `file`, and the lint's problems with it.
fn broken(file: &str, from: &str, to: &str) -> Vec<String> {
    let mut files = manifest_files();
    let (_, text) = files.iter_mut().find(|(f, _)| f == file).expect(file);
    assert!(text.contains(from), "{file} no longer contains {from:?}");
    *text = text.replacen(from, to, 1);
    problems(&files)
}

/// (file, text, replaced by, a problem that must then be reported).
#[rustfmt::skip]
const BREAKAGES: &[(&str, &str, &str, &str)] = &[
    // N written once of three times: the work would not split in N.
    ("agents.yaml", "completions: 3", "completions: 4", "parallelism"),
    ("agents.yaml", "completions: 3\n  parallelism: 3", "completions: 4\n  parallelism: 4", "--agents is"),
    ("agents.yaml", "--agents=3", "--agents=2", "--agents is"),
    ("agents.yaml", "--agent-index=$(JOB_COMPLETION_INDEX)", "--agent-index=0", "--agent-index is"),
    ("agents.yaml", "metadata.annotations['batch.kubernetes.io/job-completion-index']", "metadata.name", "JOB_COMPLETION_INDEX must come"),
    ("agents.yaml", "            - --start-at=$(START_AT)\n", "", "no --start-at"),
    ("agents.yaml", "- name: START_AT", "- name: START", "does not define"),
    ("agents.yaml", "--agent-id=$(POD_NAME)", "--agent-id=agent", "--agent-id must be"),
    ("agents.yaml", "            - --allow-remote\n", "", "no --allow-remote"),
    ("agents.yaml", "value: /reports/agent-$(JOB_COMPLETION_INDEX).json", "value: /tmp/agent-$(JOB_COMPLETION_INDEX).json", "not under"),
    ("agents.yaml", "value: /reports/agent-$(JOB_COMPLETION_INDEX).json", "value: /reports/agent.json", "share one report"),
    ("agents.yaml", "--target=tcpbench-target:9000", "--target=tcpbench-server:9000", "names no Service"),
    ("agents.yaml", "--target=tcpbench-target:9000", "--target=tcpbench-target:9001", "not a port of Service"),
    ("agents.yaml", "tcpbench \"$@\"", "tcpbench run", "hand its args"),
    ("agents.yaml", "- --quiet", "- 3", "is not a string"),
    ("agents.yaml", "completionMode: Indexed", "completionMode: NonIndexed", "expected one Indexed Job"),
    ("agents.yaml", "spec:\n  completionMode", "spec:\n completionMode: [\n  x", "not YAML"),
    ("target.yaml", "--listen=0.0.0.0:9000", "--listen=0.0.0.0:9100", "the server listens on"),
    ("target.yaml", "--listen=0.0.0.0:9000", "--listen=127.0.0.1:9000", "must be 0.0.0.0"),
    ("target.yaml", "      port: 9000", "      port: 9001", "not a port of Service"),
    ("target.yaml", "      targetPort: echo", "      targetPort: 9100", "goes to Some(9100)"),
    ("target.yaml", "component: target\n  ports:", "component: server\n  ports:", "does not select"),
    ("reports-pvc.yaml", "accessModes: [ReadWriteMany]", "accessModes: [ReadWriteOnce]", "must be ReadWriteMany"),
    ("merge.yaml", "mountPath: /reports", "mountPath: /data", "does not read /data/agent-*.json"),
    ("merge.yaml", "claimName: tcpbench-reports", "claimName: other", "does not mount"),
    ("merge.yaml", "-o /reports/merged.json", "-o merged.json", "not written under"),
    ("merge.yaml", "value: \"3\"", "value: \"4\"", "AGENTS=4"),
];

#[test]
fn the_lint_notices_a_broken_recipe() {
    let mut missed = Vec::new();
    for &(file, from, to, expect) in BREAKAGES {
        let p = broken(file, from, to);
        if !p.iter().any(|p| p.contains(expect)) {
            missed.push(format!(
                "{file}: {from:?} -> {to:?}: wanted {expect:?}, got {p:?}"
            ));
        }
    }
    assert!(
        missed.is_empty(),
        "the lint missed:\n  {}",
        missed.join("\n  ")
    );
}

/// The `tcpbench` flags each manifest's command lines use, by subcommand.
fn flags_used() -> Vec<(&'static str, String)> {
    let lint = Lint::parse(&manifest_files());
    let mut used = Vec::new();
    for c in lint.docs.iter().flat_map(Doc::containers) {
        let c = Container::new(c);
        for sub in ["run", "serve"] {
            if s(&c.y["args"][0]) == Some(sub) {
                used.extend(c.flags.iter().map(|(f, _)| (sub, f.clone())));
            }
        }
        // merge runs from a shell line: `tcpbench merge "$@" -o … --markdown …`.
        for line in c.words.iter().flat_map(|w| w.lines()) {
            if let Some((_, rest)) = line.split_once("tcpbench merge") {
                let words = rest.split_whitespace().filter(|w| w.starts_with('-'));
                used.extend(words.map(|w| ("merge", w.to_string())));
            }
        }
    }
    used
}

/// `flag` as a whole word in `help` (`--agents` is not `--agents-x`, `-o` not `--output`).
fn mentions(help: &str, flag: &str) -> bool {
    help.match_indices(flag).any(|(i, _)| {
        let before = help[..i].chars().next_back();
        let after = help[i + flag.len()..].chars().next();
        before.is_none_or(|c| !c.is_alphanumeric() && c != '-')
            && after.is_none_or(|c| !c.is_alphanumeric() && c != '-')
    })
}

#[test]
fn the_manifests_use_flags_the_binary_has() {
    let used = flags_used();
    for sub in ["run", "serve", "merge"] {
        assert!(
            used.iter().any(|(s, _)| *s == sub),
            "no `tcpbench {sub}` found"
        );
    }
    let mut help = HashMap::new();
    for (sub, flag) in used {
        let text = help.entry(sub).or_insert_with(|| {
            let out = Command::new(env!("CARGO_BIN_EXE_tcpbench"))
                .args([sub, "--help"])
                .output()
                .unwrap();
            assert!(out.status.success(), "tcpbench {sub} --help failed");
            String::from_utf8(out.stdout).unwrap()
        });
        assert!(
            mentions(text, &flag),
            "deploy/k8s passes `tcpbench {sub} {flag}`, which its --help does not list"
        );
    }
}

#[test]
fn the_ssh_recipe_parses() {
    let script = Path::new(DEPLOY).join("ssh-fanout.sh");
    let out = Command::new("bash")
        .arg("-n")
        .arg(&script)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "bash -n: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    match Command::new("shellcheck").arg(&script).output() {
        Err(e) => {
            common::require(
                &format!("shellcheck ({e}; apt-get install shellcheck)"),
                false,
            );
        }
        Ok(out) => assert!(
            out.status.success(),
            "shellcheck deploy/ssh-fanout.sh:\n{}",
            String::from_utf8_lossy(&out.stdout)
        ),
    }
}

/// The kubernetes-validate release the manifests are checked with (its default schemas are
/// Kubernetes 1.37's).
const KUBERNETES_VALIDATE: &str = "kubernetes-validate==1.37.0";

/// `kubernetes-validate` from a venv under target/, made (and the package installed with pip)
/// on first use. `Err` says why it could not be had.
fn kubernetes_validate() -> Result<std::path::PathBuf, String> {
    let works = |exe: &Path| {
        Command::new(exe)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    common::venv::tool(
        "kubernetes-validate-venv",
        KUBERNETES_VALIDATE,
        "kubernetes-validate",
        works,
    )
}

/// `kubernetes-validate --strict FILES`: its exit status and output.
fn validate(exe: &Path, files: &[std::path::PathBuf]) -> (bool, String) {
    let out = Command::new(exe)
        .arg("--strict")
        .args(files)
        .output()
        .expect("kubernetes-validate runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn the_manifests_match_the_kubernetes_api_schemas() {
    let exe = match kubernetes_validate() {
        Ok(exe) => exe,
        Err(why) if std::env::var_os("CI").is_some() => {
            panic!("kubernetes-validate is required in CI: {why}")
        }
        Err(why) => {
            eprintln!(
                "SKIPPED kubernetes-validate: cannot install it ({why}); pip install {KUBERNETES_VALIDATE}"
            );
            return;
        }
    };
    let files = manifest_files();
    let paths: Vec<std::path::PathBuf> = files
        .iter()
        .map(|(name, _)| Path::new(DEPLOY).join("k8s").join(name))
        .collect();
    let (ok, text) = validate(&exe, &paths);
    assert!(ok, "kubernetes-validate --strict deploy/k8s:\n{text}");
    // Every document was checked against a schema, none skipped as unknown.
    let docs: usize = files
        .iter()
        .map(|(_, t)| YamlLoader::load_from_str(t).unwrap().len())
        .sum();
    assert_eq!(
        text.matches(" passed for resource ").count(),
        docs,
        "{text}"
    );

    // The validator rejects what the API server would: a field no schema has (strict), a
    // number where a number must be, a Job without its pod template.
    let dir = tempfile::tempdir().unwrap();
    let agents = &files.iter().find(|(f, _)| f == "agents.yaml").unwrap().1;
    for (from, to, expect) in [
        (
            "completionMode: Indexed",
            "completionMode: Indexed\n  parallelizm: 3",
            "'parallelizm' was unexpected",
        ),
        (
            "parallelism: 3",
            "parallelism: three",
            "'three' is not of type 'integer'",
        ),
        (
            "  template:",
            "  templates:",
            "'template' is a required property",
        ),
    ] {
        assert!(
            agents.contains(from),
            "agents.yaml no longer contains {from:?}"
        );
        let file = dir.path().join("agents.yaml");
        std::fs::write(&file, agents.replacen(from, to, 1)).unwrap();
        let (ok, text) = validate(&exe, &[file]);
        assert!(
            !ok && text.contains(expect),
            "{from:?} -> {to:?}: wanted {expect:?}, got:\n{text}"
        );
    }
}
