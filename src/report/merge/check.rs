//! Which reports may merge as the agents of one run: the check `tcpbench merge` makes before
//! it merges (`--force` skips it).

use crate::report::Report;

/// Why `reports` (named by `names`) are not the agents of one run side by side, if they are
/// not: an unreadable start time, a `--repeat` report (its runs were one after another), an
/// agent given twice, agents of different splits, an agent missing, or another configuration
/// than the first report's (thread counts may differ: they follow each machine's CPUs).
pub fn agents_problem(names: &[String], reports: &[Report]) -> Option<String> {
    let mut seen: Vec<(String, Option<u32>, String, &str)> = Vec::new();
    let mut split: Option<(u32, &str)> = None;
    for (name, r) in names.iter().zip(reports) {
        if humantime::parse_rfc3339_weak(&r.started_at).is_err() {
            return Some(format!(
                "{name}: started_at '{}' is not an RFC 3339 time; give reports as tcpbench wrote them",
                r.started_at
            ));
        }
        if r.repeats.is_some() {
            return Some(format!(
                "{name} holds runs made one after another (--repeat), not an agent's run; merge agents' reports"
            ));
        }
        let agents: Vec<(String, Option<u32>, Option<u32>, String)> = if r.agents.is_empty() {
            let a = r.config.agent.as_ref();
            vec![(
                a.map_or_else(|| r.environment.hostname.clone(), |a| a.id.clone()),
                a.map(|a| a.index),
                a.map(|a| a.agents),
                r.started_at.clone(),
            )]
        } else {
            r.agents
                .iter()
                .map(|a| {
                    (
                        a.id.clone(),
                        a.index,
                        a.config.agent.as_ref().map(|x| x.agents),
                        a.started_at.clone(),
                    )
                })
                .collect()
        };
        for (id, index, of, started) in agents {
            if let Some(n) = of {
                match split {
                    Some((m, other)) if m != n => {
                        return Some(format!(
                            "{name} is an agent of --agents {n}, {other} of --agents {m}; merge the agents of one run"
                        ));
                    }
                    _ => split = Some((n, name)),
                }
            }
            if let Some((.., other)) = seen.iter().find(|(i, x, s, _)| {
                (i, x, s) == (&id, &index, &started) || (index.is_some() && *x == index)
            }) {
                let what =
                    index.map_or_else(|| format!("agent {id}"), |i| format!("agent index {i}"));
                return Some(format!(
                    "{what} is in both {other} and {name}; give each agent's report once"
                ));
            }
            seen.push((id, index, started, name));
        }
    }
    for (name, r) in names.iter().zip(reports).skip(1) {
        let changes = reports[0].config_changes_but(r, &["threads", "pin"]);
        if !changes.is_empty() {
            return Some(format!(
                "{name} was made with another configuration than {} ({}); merge the agents of one run",
                names[0],
                changes.join(", ")
            ));
        }
    }
    if let Some((n, _)) = split {
        let missing: Vec<String> = (0..n)
            .filter(|i| !seen.iter().any(|(_, x, _, _)| *x == Some(*i)))
            .map(|i| i.to_string())
            .collect();
        if !missing.is_empty() {
            return Some(format!(
                "agent index {} of --agents {n} is missing: the merge would cover part of the run",
                missing.join(", ")
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::agents_problem;
    use crate::report::{Report, fixture};

    #[test]
    fn only_the_agents_of_one_run_merge() {
        use crate::config::Agent;
        let agent = |index: u32, agents: u32, start: &str| {
            let mut r = fixture::report();
            r.started_at = start.to_string();
            r.config.agent = Some(Agent {
                id: format!("a{index}"),
                index,
                agents,
                total_conns: Some(6),
                total_rate: None,
            });
            r
        };
        let names: Vec<String> = ["x", "y", "z"].map(String::from).to_vec();
        let t = "2026-11-25T04:00:00Z";
        let (a0, a1) = (agent(0, 2, t), agent(1, 2, t));
        assert_eq!(agents_problem(&names, &[a0.clone(), a1.clone()]), None);
        let says = |reports: &[Report]| agents_problem(&names, reports).unwrap_or_default();
        assert!(says(std::slice::from_ref(&a0)).contains("agent index 1 of --agents 2 is missing"));
        assert!(says(&[a0.clone(), a0.clone()]).contains("agent index 0 is in both x and y"));
        assert!(says(&[a0.clone(), agent(1, 4, t)]).contains("--agents 4"));
        let merged = Report::merge_agents(&[a0.clone(), a1.clone()]);
        assert!(says(&[merged, a1.clone()]).contains("agent index 1 is in both x and y"));
        let mut bad = a1.clone();
        bad.started_at = "yesterday".into();
        assert!(says(&[a0.clone(), bad]).contains("y: started_at 'yesterday'"));
        let repeated = Report::merge_runs(&[a1.clone(), a1]);
        assert!(says(&[a0.clone(), repeated]).contains("--repeat"));
        let mut rst = agent(1, 2, t);
        rst.config.socket.close = crate::config::CloseMode::Rst;
        assert!(says(&[a0.clone(), rst]).contains("socket.close"));
        let mut bigger = agent(1, 2, t);
        bigger.config.threads = 16;
        assert_eq!(
            agents_problem(&names, &[a0, bigger]),
            None,
            "threads follow the CPUs"
        );
    }
}
