//! `vigil-agent install --root DIR` and `uninstall --root DIR`: the files a service install
//! writes and removes, checked in a scratch folder, without root, systemd or a collector.

use std::process::Command;

fn agent(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_vigil-agent"))
        .args(args)
        .env_remove("VIGIL_TOKEN")
        .output()
        .unwrap()
}

#[cfg(unix)]
fn succeed(args: &[&str]) -> String {
    let output = agent(args);
    assert!(
        output.status.success(),
        "vigil-agent {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// What `enroll` leaves in the config folder, as far as install cares.
#[cfg(unix)]
fn enrolled(config_dir: &std::path::Path) {
    std::fs::create_dir_all(config_dir).unwrap();
    for file in ["agent.pem", "agent-key.pem", "ca.pem"] {
        std::fs::write(config_dir.join(file), "pem").unwrap();
    }
    std::fs::write(
        config_dir.join("agent.toml"),
        "collector = \"https://127.0.0.1:7443\"\ninterval = \"10s\"\n\n[tls]\ncert = \"agent.pem\"\nkey = \"agent-key.pem\"\nca = \"ca.pem\"\n",
    )
    .unwrap();
}

#[cfg(unix)]
#[test]
fn install_writes_the_unit_and_points_the_config_at_the_state_folder() {
    let root = tempfile::tempdir().unwrap();
    let config_dir = root.path().join("etc/vigil-agent");
    enrolled(&config_dir);
    let stdout = succeed(&[
        "install",
        "--root",
        root.path().to_str().unwrap(),
        "--no-start",
    ]);
    assert!(stdout.contains("no service was registered"), "{stdout}");

    let unit = std::fs::read_to_string(root.path().join("etc/systemd/system/vigil-agent.service"))
        .unwrap();
    assert_eq!(unit, vigil_agent::service::UNIT);
    let state_dir = root.path().join("var/lib/vigil-agent");
    assert!(state_dir.is_dir());
    let config = vigil_agent::config::AgentConfig::load(&config_dir.join("agent.toml")).unwrap();
    assert_eq!(config.spool_dir(), state_dir.join("spool"));

    // Installing again over an installed agent changes nothing.
    succeed(&[
        "install",
        "--root",
        root.path().to_str().unwrap(),
        "--no-start",
    ]);
    let again = vigil_agent::config::AgentConfig::load(&config_dir.join("agent.toml")).unwrap();
    assert_eq!(again, config);
}

#[cfg(unix)]
#[test]
fn uninstall_leaves_nothing_behind() {
    let root = tempfile::tempdir().unwrap();
    enrolled(&root.path().join("etc/vigil-agent"));
    let root_arg = root.path().to_str().unwrap();
    succeed(&["install", "--root", root_arg, "--no-start"]);
    std::fs::create_dir_all(root.path().join("var/lib/vigil-agent/spool")).unwrap();

    succeed(&["uninstall", "--root", root_arg]);
    for gone in [
        "etc/vigil-agent",
        "etc/systemd/system/vigil-agent.service",
        "var/lib/vigil-agent",
        "usr/lib/systemd/system-sleep/vigil-agent",
    ] {
        assert!(!root.path().join(gone).exists(), "{gone} is left behind");
    }
}

/// On a machine with the Debian package, the unit and the sleep hook are the package's:
/// install does not copy or rewrite them and uninstall does not take them from under dpkg.
#[cfg(unix)]
#[test]
fn a_sleep_hook_the_package_installed_is_left_to_dpkg() {
    let root = tempfile::tempdir().unwrap();
    enrolled(&root.path().join("etc/vigil-agent"));
    let hook = root.path().join("usr/lib/systemd/system-sleep/vigil-agent");
    std::fs::create_dir_all(hook.parent().unwrap()).unwrap();
    std::fs::write(&hook, "#!/bin/sh\n# as the package shipped it\n").unwrap();
    let dpkg_info = root.path().join("var/lib/dpkg/info");
    std::fs::create_dir_all(&dpkg_info).unwrap();
    std::fs::write(
        dpkg_info.join("vigil-agent.list"),
        "/.\n/usr\n/usr/bin/vigil-agent\n/lib/systemd/system/vigil-agent.service\n/usr/lib/systemd/system-sleep/vigil-agent\n",
    )
    .unwrap();
    let root_arg = root.path().to_str().unwrap();

    succeed(&["install", "--root", root_arg, "--no-start"]);
    let unit_in_etc = root.path().join("etc/systemd/system/vigil-agent.service");
    assert!(!unit_in_etc.exists(), "the package's unit in /lib serves");
    let content = std::fs::read_to_string(&hook).unwrap();
    assert!(content.contains("as the package shipped it"), "{content}");
    succeed(&["uninstall", "--root", root_arg]);
    assert!(hook.exists(), "uninstall removed the package's hook");
    assert!(!root
        .path()
        .join("etc/systemd/system/vigil-agent.service")
        .exists());
}

#[cfg(unix)]
#[test]
fn uninstall_with_keep_spool_keeps_only_the_spool() {
    let root = tempfile::tempdir().unwrap();
    enrolled(&root.path().join("etc/vigil-agent"));
    let root_arg = root.path().to_str().unwrap();
    succeed(&["install", "--root", root_arg, "--no-start"]);
    let state_dir = root.path().join("var/lib/vigil-agent");
    std::fs::create_dir_all(state_dir.join("spool")).unwrap();
    std::fs::write(state_dir.join("spool").join("db"), "unacknowledged").unwrap();
    std::fs::write(state_dir.join("scratch"), "x").unwrap();

    let stdout = succeed(&["uninstall", "--root", root_arg, "--keep-spool"]);
    assert!(stdout.contains("the spool stays in"), "{stdout}");
    assert_eq!(
        std::fs::read_to_string(state_dir.join("spool").join("db")).unwrap(),
        "unacknowledged"
    );
    assert!(!state_dir.join("scratch").exists());
    assert!(!root.path().join("etc/vigil-agent").exists());
    assert!(!root
        .path()
        .join("etc/systemd/system/vigil-agent.service")
        .exists());
}

#[test]
fn install_without_a_token_needs_an_enrolled_agent() {
    let root = tempfile::tempdir().unwrap();
    let output = agent(&[
        "install",
        "--root",
        root.path().to_str().unwrap(),
        "--no-start",
    ]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("has no agent.toml; enroll first"),
        "{stderr}"
    );
    assert!(!root.path().join("etc/systemd").exists());
}

#[test]
fn a_token_without_a_collector_is_refused() {
    let output = agent(&["install", "--token", "x", "--no-start"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--collector"));
}

#[test]
fn the_token_may_come_from_the_environment_as_deployment_scripts_pass_it() {
    let root = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_vigil-agent"))
        .args([
            "install",
            "--collector",
            "https://127.0.0.1:1",
            "--no-start",
        ])
        .args(["--root", root.path().to_str().unwrap()])
        .env("VIGIL_TOKEN", "not-a-token")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    // Past the command line: it is the token itself that is refused.
    assert!(!stderr.contains("--token"), "{stderr}");
    assert!(
        !stderr.contains("the following required arguments"),
        "{stderr}"
    );
}
