//! The deployment files (Dockerfile, docker-compose.yml, deploy/kubernetes/) checked against
//! the binary: every environment variable they give the server is one it reads and accepts,
//! every probe path is one it serves, and the hardening they promise is there. No container
//! engine runs here, so this reads the files rather than running them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use clap::CommandFactory as _;
use clap::Parser as _;
use obscura_server::{Cli, Settings};
use obscura_testkit::TestServer;
use reqwest::StatusCode;
use yaml_rust2::{Yaml, YamlLoader};

fn repo_file(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo_file(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn yaml_docs(path: &str) -> Vec<Yaml> {
    YamlLoader::load_from_str(&read(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Environment variable → long flag, for every argument the binary reads from the environment.
fn flags_by_env() -> BTreeMap<String, String> {
    Cli::command()
        .get_arguments()
        .filter_map(|arg| Some((arg.get_env()?.to_str()?.to_owned(), arg.get_long()?.to_owned())))
        .collect()
}

/// Fails unless every variable is one the binary reads and, together, they make valid settings.
fn assert_server_accepts(origin: &str, env: &BTreeMap<String, String>) {
    let known = flags_by_env();
    let data_dir = tempfile::tempdir().unwrap();
    let mut argv = vec!["obscura-server".to_owned(), "--data-dir".to_owned(), data_dir.path().display().to_string()];
    for (name, value) in env {
        let flag = known.get(name).unwrap_or_else(|| panic!("{origin} sets {name}, which the server does not read"));
        // The data directory is a path inside the container; here a temporary one stands in.
        if flag != "data-dir" {
            argv.push(format!("--{flag}={value}"));
        }
    }
    let cli = Cli::try_parse_from(&argv).unwrap_or_else(|e| panic!("{origin}: {e}"));
    if let Err(err) = Settings::from_cli(&cli) {
        panic!("{origin}: the server refuses these settings: {err}");
    }
}

fn string_map(yaml: &Yaml) -> BTreeMap<String, String> {
    let Some(hash) = yaml.as_hash() else { return BTreeMap::new() };
    hash.iter()
        .map(|(k, v)| {
            let value = match v {
                Yaml::String(s) => s.clone(),
                Yaml::Integer(i) => i.to_string(),
                Yaml::Boolean(b) => b.to_string(),
                other => panic!("unexpected value {other:?} for {k:?}"),
            };
            (k.as_str().unwrap().to_owned(), value)
        })
        .collect()
}

fn cli_defaults() -> Cli {
    Cli::try_parse_from(["obscura-server"]).unwrap()
}

#[test]
fn the_dockerfile_builds_in_stages_and_runs_unprivileged() {
    let dockerfile = read("Dockerfile");
    let lines: Vec<&str> = dockerfile.lines().map(str::trim).collect();
    assert!(lines.iter().filter(|l| l.starts_with("FROM ")).count() >= 2, "multi-stage build");
    let user = lines.iter().rev().find_map(|l| l.strip_prefix("USER ")).expect("a USER line");
    assert!(!["root", "0", "0:0"].contains(&user.trim()), "runs as a non-root user, not {user}");
    let env: BTreeMap<String, String> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("ENV "))
        .map(|kv| {
            let (k, v) = kv.split_once('=').expect("ENV KEY=VALUE");
            (k.to_owned(), v.to_owned())
        })
        .collect();
    assert_server_accepts("Dockerfile", &env);
    let exposed: BTreeSet<u16> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("EXPOSE "))
        .flat_map(|p| p.split_whitespace())
        .map(|p| p.parse().unwrap())
        .collect();
    let defaults = cli_defaults();
    assert_eq!(
        exposed,
        BTreeSet::from([defaults.server_port, defaults.mgmt_port]),
        "exposes the API and management ports"
    );
}

#[test]
fn the_compose_stack_configures_the_server_with_what_it_reads() {
    let docs = yaml_docs("docker-compose.yml");
    let services = &docs[0]["services"];
    for needed in ["db", "valkey", "minio", "server"] {
        assert!(!services[needed].is_badvalue(), "docker-compose.yml has a {needed} service");
    }
    let server = &services["server"];
    let env = string_map(&server["environment"]);
    assert_server_accepts("docker-compose.yml (server)", &env);
    for mode in ["OBSCURA_DATABASE_URL", "OBSCURA_PUBSUB_URL", "OBSCURA_STORAGE_ENDPOINT"] {
        assert!(env.contains_key(mode), "the compose stack runs the scale-out mode ({mode})");
    }
    assert_eq!(server["read_only"].as_bool(), Some(true), "read-only root filesystem");
    assert_eq!(server["cap_drop"][0].as_str(), Some("ALL"), "no capabilities");
}

/// Every manifest in deploy/kubernetes, by kind.
fn manifests() -> Vec<Yaml> {
    let dir = repo_file("deploy/kubernetes");
    let mut docs = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name.ends_with(".yaml") && name != "kustomization.yaml" {
            docs.extend(yaml_docs(&format!("deploy/kubernetes/{name}")));
        }
    }
    docs
}

fn of_kind<'a>(docs: &'a [Yaml], kind: &str) -> Vec<&'a Yaml> {
    docs.iter().filter(|d| d["kind"].as_str() == Some(kind)).collect()
}

fn named<'a>(docs: &'a [Yaml], kind: &str, name: &str) -> &'a Yaml {
    of_kind(docs, kind)
        .into_iter()
        .find(|d| d["metadata"]["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("no {kind} named {name} in deploy/kubernetes"))
}

#[test]
fn the_kustomization_lists_every_manifest_but_the_secret_example() {
    let kustomization = &yaml_docs("deploy/kubernetes/kustomization.yaml")[0];
    let listed: BTreeSet<&str> =
        kustomization["resources"].as_vec().unwrap().iter().map(|r| r.as_str().unwrap()).collect();
    let files: BTreeSet<String> = std::fs::read_dir(repo_file("deploy/kubernetes"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".yaml") && n != "kustomization.yaml" && n != "secret.example.yaml")
        .collect();
    assert_eq!(listed, files.iter().map(String::as_str).collect());
    for kind in [
        "Deployment",
        "Service",
        "Ingress",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "NetworkPolicy",
        "ConfigMap",
        "Secret",
        "CronJob",
    ] {
        assert!(!of_kind(&manifests(), kind).is_empty(), "deploy/kubernetes has a {kind}");
    }
}

#[tokio::test]
async fn the_kubernetes_deployment_runs_the_server_as_configured_and_probes_what_it_serves() {
    let docs = manifests();
    let deployment = named(&docs, "Deployment", "obscura-server");
    let pod = &deployment["spec"]["template"]["spec"];
    let containers: Vec<&Yaml> =
        pod["containers"].as_vec().unwrap().iter().filter(|c| c["image"].as_str() == Some("obscura-server")).collect();
    assert_eq!(containers.len(), 1, "one server container (image obscura-server, set by the kustomization)");
    let container = containers[0];

    // Its environment: the ConfigMap and Secret it loads, plus its own entries.
    let mut env = BTreeMap::new();
    for source in container["envFrom"].as_vec().unwrap() {
        if let Some(name) = source["configMapRef"]["name"].as_str() {
            env.extend(string_map(&named(&docs, "ConfigMap", name)["data"]));
        }
        if let Some(name) = source["secretRef"]["name"].as_str() {
            env.extend(string_map(&named(&docs, "Secret", name)["stringData"]));
        }
    }
    for var in container["env"].as_vec().map(Vec::as_slice).unwrap_or_default() {
        env.insert(var["name"].as_str().unwrap().to_owned(), var["value"].as_str().unwrap_or("x").to_owned());
    }
    assert_server_accepts("deploy/kubernetes (server container)", &env);

    // Named ports match the ports the server listens on with this environment.
    let defaults = cli_defaults();
    let port = |var: &str, default: u16| env.get(var).map_or(default, |p| p.parse().unwrap());
    let ports: BTreeMap<&str, i64> = container["ports"]
        .as_vec()
        .unwrap()
        .iter()
        .map(|p| (p["name"].as_str().unwrap(), p["containerPort"].as_i64().unwrap()))
        .collect();
    assert_eq!(ports.get("http").copied(), Some(i64::from(port("OBSCURA_SERVER_PORT", defaults.server_port))));
    assert_eq!(ports.get("mgmt").copied(), Some(i64::from(port("OBSCURA_SERVER_MGMT_PORT", defaults.mgmt_port))));

    // Every probe targets the management port and a path the management router serves.
    let server = TestServer::start().await;
    let http = reqwest::Client::new();
    let mut probed = 0;
    for probe in ["startupProbe", "livenessProbe", "readinessProbe"] {
        let get = &container[probe]["httpGet"];
        if get.is_badvalue() {
            continue;
        }
        assert_eq!(get["port"].as_str(), Some("mgmt"), "{probe} uses the management port");
        let path = get["path"].as_str().unwrap();
        let status = http.get(format!("{}{path}", server.mgmt)).send().await.unwrap().status();
        assert_eq!(status, StatusCode::OK, "{probe} path {path} is served");
        probed += 1;
    }
    assert!(probed >= 2, "liveness and readiness probes");
    let slowest_check = [
        ("OBSCURA_HEALTH_DB_TIMEOUT_MS", defaults.db_timeout_ms),
        ("OBSCURA_HEALTH_STORAGE_TIMEOUT_MS", defaults.storage_timeout_ms),
        ("OBSCURA_HEALTH_PUBSUB_TIMEOUT_MS", defaults.pubsub_timeout_ms),
    ]
    .into_iter()
    .map(|(var, default)| env.get(var).map_or(default, |ms| ms.parse().unwrap()))
    .max()
    .unwrap();
    let probe_timeout = container["readinessProbe"]["timeoutSeconds"].as_i64().unwrap_or(1);
    assert!(
        u64::try_from(probe_timeout).unwrap() * 1000 > slowest_check,
        "the readiness probe ({probe_timeout}s) outwaits the slowest dependency check ({slowest_check}ms)"
    );

    // Hardening, and a termination grace that covers the pause and the drain.
    let security = &container["securityContext"];
    assert_eq!(security["readOnlyRootFilesystem"].as_bool(), Some(true));
    assert_eq!(security["allowPrivilegeEscalation"].as_bool(), Some(false));
    assert_eq!(security["capabilities"]["drop"][0].as_str(), Some("ALL"));
    assert_eq!(pod["securityContext"]["runAsNonRoot"].as_bool(), Some(true));
    let pause = container["lifecycle"]["preStop"]["sleep"]["seconds"].as_i64().unwrap_or(0);
    let drain: i64 = env
        .get("OBSCURA_SERVER_SHUTDOWN_TIMEOUT_SECS")
        .map_or(i64::try_from(defaults.shutdown_timeout_secs).unwrap(), |s| s.parse().unwrap());
    let grace = pod["terminationGracePeriodSeconds"].as_i64().unwrap_or(30);
    assert!(grace > pause + drain, "grace {grace}s covers the preStop pause {pause}s and the drain {drain}s");
    assert_eq!(deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"].as_i64(), Some(0));

    // The Service and the Ingress lead to the named ports; the Ingress has TLS from cert-manager.
    let service = named(&docs, "Service", "obscura-server");
    for port in service["spec"]["ports"].as_vec().unwrap() {
        let target = port["targetPort"].as_str().unwrap();
        assert!(ports.contains_key(target), "the Service targets a container port ({target})");
    }
    let ingress = named(&docs, "Ingress", "obscura-server");
    assert!(ingress["metadata"]["annotations"]["cert-manager.io/cluster-issuer"].as_str().is_some());
    assert!(!ingress["spec"]["tls"][0]["secretName"].is_badvalue());
    let backend = &ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"];
    assert_eq!(backend["port"]["name"].as_str(), Some("http"), "only the API is exposed");
}
