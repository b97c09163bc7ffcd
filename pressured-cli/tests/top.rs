//! `pressured top` (issue 18 item 1): the live view in a real terminal (tmux: send-keys,
//! capture-pane), and the plain table of `--once` and of a stdout that is not a terminal.

use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use pressure_testkit::{Capability, require};

fn pressured() -> Command {
    Command::new(env!("CARGO_BIN_EXE_pressured"))
}

fn example() -> String {
    format!(
        "{}/../examples/replay-timeline.jsonl",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// A tmux server of its own (a unique socket) with one session running a command; the server is
/// killed when dropped, also when the test fails.
struct Tmux {
    socket: String,
}

impl Tmux {
    /// Starts `command` in a detached `width`×`height` session.
    fn start(test: &str, command: &str, width: u16, height: u16) -> Tmux {
        static N: AtomicU32 = AtomicU32::new(0);
        let socket = format!(
            "pressure-{test}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let tmux = Tmux { socket };
        let out = tmux.run(&[
            "new-session",
            "-d",
            "-s",
            "top",
            "-x",
            &width.to_string(),
            "-y",
            &height.to_string(),
            command,
        ]);
        assert!(out.status.success(), "tmux new-session: {out:?}");
        tmux
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .args(["-L", &self.socket, "-f", "/dev/null"])
            .args(args)
            .output()
            .expect("run tmux")
    }

    /// The screen as text.
    fn screen(&self) -> String {
        let out = self.run(&["capture-pane", "-p", "-t", "top"]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits (at most 30 s) until the screen satisfies `pred`; returns it.
    fn wait_for(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let screen = self.screen();
            if pred(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "no {what} on the screen in time:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "top"];
        args.extend_from_slice(keys);
        let out = self.run(&args);
        assert!(out.status.success(), "tmux send-keys: {out:?}");
    }

    /// Waits (at most 30 s) for the session to end (its command exited).
    fn wait_gone(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.run(&["has-session", "-t", "top"]).status.success() {
            assert!(Instant::now() < deadline, "the session is still running");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}

/// The screen line that starts with `name`, if any.
fn line<'a>(screen: &'a str, name: &str) -> Option<&'a str> {
    screen.lines().find(|l| l.starts_with(name))
}

/// The names of the table's rows, top to bottom.
fn order(screen: &str) -> Vec<&str> {
    screen
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| w.matches('/').count() == 2 && !w.starts_with("NAMESPACE"))
        .collect()
}

#[test]
fn top_live_view_in_tmux_sorts_filters_pauses_and_quits() {
    let test = "top_live_view_in_tmux";
    if require(test, &Capability::TMUX).is_none() {
        return;
    }
    let command = format!(
        "{} top --replay {} --speed 10",
        env!("CARGO_BIN_EXE_pressured"),
        example()
    );
    let tmux = Tmux::start("top", &command, 150, 20);
    // The whole timeline (36 s at ×10): cart-0 is killed once and restarts small.
    let screen = tmux.wait_for("the end of the replay", |s| s.contains("replay ended"));
    assert!(
        screen.starts_with("pressured top: replay"),
        "title:\n{screen}"
    );
    assert!(screen.contains("3/3 containers  sort: risk"), "{screen}");
    assert!(screen.contains("NAMESPACE/POD/CONTAINER"), "{screen}");
    assert_eq!(
        order(&screen),
        ["shop/search-0/es", "shop/cart-0/app", "batch/etl-0/worker"],
        "by risk: warn first, then by percent:\n{screen}"
    );
    let search = line(&screen, "shop/search-0/es").unwrap();
    assert!(
        search.contains("1.10Gi/2.00Gi") && search.contains("55.0") && search.contains("warn"),
        "{search}"
    );
    assert!(search.contains("███████████░░░░░░░░░"), "the bar: {search}");
    let cart = line(&screen, "shop/cart-0/app").unwrap();
    assert!(
        cart.contains("194Mi/1000Mi") && cart.split_whitespace().any(|w| w == "1"),
        "one kill: {cart}"
    );
    let etl = line(&screen, "batch/etl-0/worker").unwrap();
    assert!(
        etl.contains("3.28Gi/none") && etl.contains("+600.0"),
        "{etl}"
    );
    assert!(screen.contains("q quit"), "{screen}");

    // Sort: `s` cycles risk → percent → trend; the growing etl-0 comes first by trend.
    tmux.keys(&["s"]);
    tmux.wait_for("sort by percent", |s| s.contains("sort: percent"));
    tmux.keys(&["s"]);
    let screen = tmux.wait_for("sort by trend", |s| s.contains("sort: trend"));
    assert!(screen.contains("TREND▼"), "{screen}");
    assert_eq!(order(&screen)[0], "batch/etl-0/worker", "{screen}");

    // Filter: `/` + text + Enter keeps the shop namespace; `n` steps through namespaces.
    tmux.keys(&["/", "sh", "Enter"]);
    let screen = tmux.wait_for("the namespace filter", |s| s.contains("namespace: sh "));
    assert!(screen.contains("2/3 containers"), "{screen}");
    assert_eq!(order(&screen).len(), 2, "{screen}");
    assert!(
        order(&screen).iter().all(|n| n.starts_with("shop/")),
        "{screen}"
    );
    // Esc alone: an Esc followed at once by a key reads as Alt+key.
    tmux.keys(&["Escape"]);
    tmux.wait_for("no filter", |s| s.contains("3/3 containers"));
    tmux.keys(&["n"]);
    let screen = tmux.wait_for("the first namespace", |s| s.contains("namespace: batch"));
    assert_eq!(order(&screen), ["batch/etl-0/worker"], "{screen}");
    tmux.keys(&["n", "n"]);
    let screen = tmux.wait_for("all namespaces", |s| {
        s.contains("3/3 containers") && !s.contains("namespace:")
    });
    assert_eq!(order(&screen).len(), 3, "{screen}");

    // Pause and resume.
    tmux.keys(&["p"]);
    tmux.wait_for("PAUSED", |s| s.contains("PAUSED"));
    tmux.keys(&["Space"]);
    tmux.wait_for("resumed", |s| !s.contains("PAUSED"));

    // Quit.
    tmux.keys(&["q"]);
    tmux.wait_gone();
}

#[test]
fn top_quits_on_ctrl_c_while_the_replay_runs() {
    let test = "top_quits_on_ctrl_c";
    if require(test, &Capability::TMUX).is_none() {
        return;
    }
    // At its own pace the timeline takes 36 s: Ctrl-C comes in the middle of it.
    let command = format!(
        "{} top --replay {}",
        env!("CARGO_BIN_EXE_pressured"),
        example()
    );
    let tmux = Tmux::start("top-ctrl-c", &command, 150, 20);
    let screen = tmux.wait_for("the first rows", |s| s.contains("shop/cart-0/app"));
    assert!(!screen.contains("replay ended"), "{screen}");
    tmux.keys(&["C-c"]);
    tmux.wait_gone();
}

#[test]
fn top_once_prints_one_plain_table_of_the_end_of_the_replay() {
    let out = pressured()
        .args(["top", "--once", "--replay", &example()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(!text.contains('\x1b'), "no escape sequences: {text:?}");
    for column in [
        "NAMESPACE/POD/CONTAINER",
        "WORKING SET/LIMIT",
        "%",
        "TREND",
        "ETA",
        "PSI",
        "KILLS",
        "SEVERITY",
    ] {
        assert!(lines[0].contains(column), "{column}: {}", lines[0]);
    }
    let words = |l: &str| -> Vec<String> { l.split_whitespace().map(str::to_owned).collect() };
    assert_eq!(
        words(lines[1]),
        [
            "shop/search-0/es",
            "1.10Gi/2.00Gi",
            "[###########.........]",
            "55.0",
            "0.0",
            "-",
            "-",
            "0",
            "warn"
        ]
    );
    assert_eq!(
        words(lines[2]),
        [
            "shop/cart-0/app",
            "194Mi/1000Mi",
            "[####................]",
            "19.4",
            "-485.0",
            "-",
            "-",
            "1",
            "ok"
        ]
    );
    assert_eq!(words(lines[3])[..2], ["batch/etl-0/worker", "3.28Gi/none"]);
}

#[test]
fn top_once_shows_the_eta_and_puts_the_leak_first_before_the_kill() {
    // The example up to t = 28 s: cart-0 is critical, rising, 6 s from its limit (pressured --replay
    // announces predicted_oom with eta_seconds 4.6 one second later).
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("before-kill.jsonl");
    let text = std::fs::read_to_string(example()).unwrap();
    let head: String = text
        .lines()
        .filter(|l| {
            !l.starts_with('{')
                || serde_json::from_str::<serde_json::Value>(l).unwrap()["t"]
                    .as_f64()
                    .is_some_and(|t| t <= 28.0)
        })
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&file, head).unwrap();
    let out = pressured()
        .args(["top", "--once", "--replay"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let table = String::from_utf8(out.stdout).unwrap();
    let first = table.lines().nth(1).unwrap();
    let words: Vec<&str> = first.split_whitespace().collect();
    assert_eq!(words[0], "shop/cart-0/app", "{table}");
    assert_eq!(words[5], "6s", "ETA: {table}");
    assert_eq!(words[8], "critical", "{table}");
    assert!(words[4].starts_with('+'), "growing: {table}");
}

#[test]
fn top_without_a_terminal_prints_the_table_and_a_bad_line_fails_the_run() {
    // stdout is a pipe: the plain table without --once.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("timeline.jsonl");
    std::fs::write(
        &file,
        concat!(
            r#"{"t": 0, "namespace": "a", "pod": "p", "container": "c", "usage_bytes": 900, "limit_bytes": 1000}"#,
            "\n",
            "not json\n",
            r#"{"t": 1, "namespace": "a", "pod": "p", "container": "c", "usage_bytes": 950, "limit_bytes": 1000, "psi_some_avg10": 12.25}"#,
            "\n",
        ),
    )
    .unwrap();
    let out = pressured()
        .args(["top", "--replay"])
        .arg(&file)
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        line(&text, "a/p/c")
            .is_some_and(|l| l.contains("95.0") && l.contains(" 12.2 ") && l.ends_with("critical")),
        "{text}"
    );
    assert!(!out.status.success(), "a malformed line fails the run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("1 malformed line(s)"), "{err}");
}

#[test]
fn top_once_in_node_mode_reads_the_cgroup_tree() {
    // A cgroup v2 tree as the kernel writes it, in a temp dir: one burstable pod at 80 % of 100 MiB.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("cgroup");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(
        root.join("cgroup.controllers"),
        "cpuset cpu io memory pids\n",
    )
    .unwrap();
    let uid = pressure_testkit::unique_pod_uid();
    let container = pressure_testkit::unique_container_id();
    let pod = root.join(format!("kubepods/burstable/pod{uid}"));
    for (dir, usage) in [(pod.clone(), 80u64 << 20), (pod.join(&container), 80 << 20)] {
        std::fs::create_dir_all(&dir).unwrap();
        for (name, text) in [
            ("memory.current", format!("{usage}\n")),
            ("memory.max", format!("{}\n", 100u64 << 20)),
            ("memory.stat", format!("anon {usage}\nfile 0\nactive_file 0\ninactive_file 0\n")),
            ("memory.events", "low 0\nhigh 0\nmax 0\noom 0\noom_kill 2\noom_group_kill 0\n".into()),
            (
                "memory.pressure",
                "some avg10=3.50 avg60=0.00 avg300=0.00 total=0\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n".into(),
            ),
        ] {
            std::fs::write(dir.join(name), text).unwrap();
        }
    }
    let config = dir.path().join("config.json");
    let cfg = serde_json::json!({"source": {"mode": "node", "poll_interval_ms": 100, "cgroup": {"path": root}}});
    std::fs::write(&config, cfg.to_string()).unwrap();
    let out = pressured()
        .arg("-c")
        .arg(&config)
        .args(["top", "--once"])
        .env_remove("NODE_NAME")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let table = String::from_utf8(out.stdout).unwrap();
    let row = table
        .lines()
        .find(|l| l.contains(&uid))
        .unwrap_or_else(|| panic!("no row of pod {uid}:\n{table}"));
    let words: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(words[1], "80.0Mi/100Mi", "{table}");
    assert_eq!(words[3], "80.0", "{table}");
    assert_eq!(words[4], "0.0", "trend known after two cycles: {table}");
    assert_eq!(words[6], "3.5", "PSI: {table}");
    assert_eq!(words[7], "2", "kills: {table}");
    assert_eq!(words[8], "warn", "{table}");
}

#[test]
fn top_once_in_cluster_mode_reads_the_summaries() {
    use pressure_testkit::{ContainerUsage, World};
    let (_rt, server) = crate::util::start_server(World::synthetic(2, 2));
    server.set_usage(
        "ns-0",
        "pod-0-0",
        "app",
        ContainerUsage::working_set(230 << 20),
    );
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = server.write_kubeconfig(dir.path()).expect("kubeconfig");
    let config = dir.path().join("config.json");
    let cfg = serde_json::json!({"source": {"mode": "cluster", "poll_interval_ms": 100}});
    std::fs::write(&config, cfg.to_string()).unwrap();
    let out = pressured()
        .arg("-c")
        .arg(&config)
        .args(["top", "--once"])
        .env("KUBECONFIG", &kubeconfig)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let table = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines.len() > 2, "{table}");
    let words: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(
        words[0], "ns-0/pod-0-0/app",
        "the critical one first:\n{table}"
    );
    assert_eq!(words[1], "230Mi/256Mi", "{table}");
    assert_eq!(words[8], "critical", "{table}");
}
