//! Loading tests. `figment::Jail` gives each test its own directory and environment.

// Jail closures return `figment::Error`, which is large; that is figment's API, not ours.
#![allow(clippy::result_large_err)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Jail;

use crate::*;
use roost_auth::{AclRule, Action, Permission};

const OPERATING_EXAMPLE: &str = include_str!("../testdata/operating-example.toml");
const OPERATING_FULL: &str = include_str!("../testdata/operating-full.toml");
const FILE: &str = "roost.toml";

/// Writes `toml` to `roost.toml` in the jail and loads it.
fn load_toml(jail: &mut Jail, toml: &str) -> Result<Config, ConfigError> {
    jail.create_file(FILE, toml).expect("write config file");
    load(Some(Path::new(FILE)))
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// Asserts that `result` failed validation of `key`, with a message containing `needle`,
/// and returns the error for further checks.
#[track_caller]
fn assert_invalid(result: Result<Config, ConfigError>, key: &str, needle: &str) -> ConfigError {
    let error = result.expect_err("config should be rejected");
    match &error {
        ConfigError::Invalid {
            key: bad, message, ..
        } => {
            assert_eq!(bad, key, "{error}");
            assert!(message.contains(needle), "{error}");
        }
        other => panic!("expected an invalid {key}, got {other:?}"),
    }
    assert!(
        error.to_string().starts_with(&format!("{key}: ")),
        "{error}"
    );
    error
}

#[test]
fn defaults_without_file() {
    Jail::expect_with(|_| {
        let config = load(None).unwrap();
        assert_eq!(config, Config::default());
        assert_eq!(config.node.data_dir, PathBuf::from("./roost-data"));
        assert_eq!(config.mqtt.listen, addr("127.0.0.1:1883"));
        assert_eq!(config.mqtt.ws_listen, None);
        assert_eq!(config.mqtt.tls_listen, None);
        assert_eq!(config.http.listen, addr("127.0.0.1:8080"));
        assert_eq!(config.auth.jwt_secret, None);
        assert!(!config.auth.allow_anonymous);
        assert!(config.acl.rules.is_empty());
        assert_eq!(config.limits.max_connections, 100_000);
        assert_eq!(config.limits.max_packet_size, 69_632);
        assert_eq!(config.limits.connect_timeout, Duration::from_secs(5));
        assert_eq!(config.limits.receive_maximum, 64);
        assert_eq!(config.limits.topic_alias_maximum, 10);
        assert_eq!(config.limits.max_subscriptions, 100);
        assert_eq!(config.limits.max_retained_per_user, 256);
        assert_eq!(config.limits.max_queued_messages, 1000);
        assert_eq!(config.history.database_url, None);
        assert_eq!(config.cluster, Cluster::default());
        Ok(())
    });
}

#[test]
fn empty_file_is_the_defaults() {
    Jail::expect_with(|jail| {
        assert_eq!(load_toml(jail, "").unwrap(), Config::default());
        Ok(())
    });
}

#[test]
fn operating_example_with_every_key() {
    Jail::expect_with(|jail| {
        let config = load_toml(jail, OPERATING_FULL).unwrap();
        let expected = Config {
            node: Node {
                data_dir: "./roost-data".into(),
            },
            mqtt: Mqtt {
                listen: addr("0.0.0.0:1883"),
                ws_listen: Some(addr("0.0.0.0:8083")),
                tls_listen: Some(addr("0.0.0.0:8883")),
                wss_listen: Some(addr("0.0.0.0:8084")),
                tls_cert: Some("tls/cert.pem".into()),
                tls_key: Some("tls/key.pem".into()),
            },
            http: Http {
                listen: addr("0.0.0.0:8080"),
                max_connections: 128,
                header_timeout: Duration::from_secs(5),
                cors_origins: vec!["https://chat.example".into()],
            },
            auth: Auth {
                jwt_secret: Some(Secret::new("...".into())),
                jwt_public_keys: vec!["keys/a.pem".into()],
                jwks_file: Some("keys/jwks.json".into()),
                issuer: Some("https://id.example".into()),
                audience: Some("roost".into()),
                allow_anonymous: false,
            },
            acl: Acl {
                rules: vec![
                    AclRule {
                        permission: Permission::Allow,
                        action: Action::All,
                        topic: "devices/{user}/#".into(),
                    },
                    AclRule {
                        permission: Permission::Deny,
                        action: Action::Publish,
                        topic: "devices/+/firmware".into(),
                    },
                ],
            },
            limits: Limits {
                max_connections: 100_000,
                max_packet_size: 65_536,
                connect_timeout: Duration::from_secs(5),
                receive_maximum: 32,
                topic_alias_maximum: 10,
                max_subscriptions: 50,
                write_timeout: Duration::from_secs(20),
                max_retained_per_user: 16,
                max_queued_messages: 500,
            },
            history: History {
                database_url: Some("postgres://roost@db.example/roost".into()),
                service: false,
                max_age: Some(Duration::from_secs(90 * 24 * 3600)),
                max_messages: Some(10_000),
                max_requests_per_second: 10,
                pool_size: Some(4),
                delivery: Some(Delivery::Stamped),
            },
            accounts: Accounts {
                token_ttl: Duration::from_secs(8 * 3600),
                mqtt_passwords: true,
                hash_workers: 2,
                hash_queue: 64,
                login_attempts_per_minute: 5,
                recheck_interval: Duration::from_secs(10),
            },
            presence: Presence {
                visibility: Visibility::Groups,
            },
            cluster: Cluster {
                node_id: Some("pi1".into()),
                nats: vec![
                    "nats://10.0.0.11:4222".into(),
                    "nats://10.0.0.12:4222".into(),
                ],
                nats_creds: Some("/etc/roost/nats.creds".into()),
                nats_user: None,
                nats_password: None,
                nats_token: None,
                subject_prefix: "roost".into(),
                node_timeout: Duration::from_secs(10),
                drain_period: None,
                agent_listen: None,
            },
        };
        assert_eq!(config, expected);
        Ok(())
    });
}

#[test]
fn operating_example_nats_credentials() {
    Jail::expect_with(|jail| {
        let toml = OPERATING_FULL.replace(
            "nats_creds = \"/etc/roost/nats.creds\"",
            "nats_user = \"roost\"\nnats_password = \"s3cret\"",
        );
        let config = load_toml(jail, &toml).unwrap();
        assert_eq!(config.cluster.nats_creds, None);
        assert_eq!(config.cluster.nats_user.as_deref(), Some("roost"));
        let shown = config.to_masked_toml();
        assert!(!shown.contains("s3cret"), "{shown}");

        let both = OPERATING_FULL.replace("nats_creds = ", "nats_token = \"t\"\nnats_creds = ");
        assert_invalid(
            load_toml(jail, &both),
            "cluster.nats_creds",
            "cluster.nats_token",
        );
        Ok(())
    });
}

#[test]
fn operating_example_as_printed_needs_tls_files() {
    // The example block of docs/operating.md, verbatim, sets tls_listen without tls_cert /
    // tls_key. Everything else in it is valid.
    Jail::expect_with(|jail| {
        let error = assert_invalid(
            load_toml(jail, OPERATING_EXAMPLE),
            "mqtt.tls_listen",
            "requires mqtt.tls_cert and mqtt.tls_key",
        );
        assert!(error.to_string().contains(FILE), "{error}");

        jail.set_env("ROOST_MQTT__TLS_CERT", "cert.pem");
        jail.set_env("ROOST_MQTT__TLS_KEY", "key.pem");
        let config = load(Some(Path::new(FILE))).unwrap();
        assert_eq!(config.mqtt.tls_listen, Some(addr("0.0.0.0:8883")));
        assert_eq!(config.cluster.node_id.as_deref(), Some("pi1"));
        Ok(())
    });
}

#[test]
fn env_overrides_file() {
    Jail::expect_with(|jail| {
        jail.create_file(
            FILE,
            r#"
            [mqtt]
            listen = "0.0.0.0:1883"
            [limits]
            connect_timeout = "5s"
            max_connections = 10
            "#,
        )?;
        jail.set_env("ROOST_MQTT__LISTEN", "127.0.0.1:11883");
        jail.set_env("ROOST_LIMITS__CONNECT_TIMEOUT", "10s");
        jail.set_env("ROOST_AUTH__JWT_SECRET", "from-env");
        jail.set_env("ROOST_AUTH__ALLOW_ANONYMOUS", "true");
        jail.set_env("ROOST_HTTP__LISTEN", "[::1]:8081");
        jail.set_env("ROOST_HTTP__HEADER_TIMEOUT", "2s");
        jail.set_env(
            "ROOST_CLUSTER__NATS",
            "nats://10.0.0.2:4222, tls://10.0.0.3:4443",
        );
        jail.set_env("ROOST_CLUSTER__NODE_ID", "pi2");
        jail.set_env("ROOST_HISTORY__DATABASE_URL", "postgres://roost@db/roost");

        let config = load(Some(Path::new(FILE))).unwrap();
        assert_eq!(config.mqtt.listen, addr("127.0.0.1:11883"));
        assert_eq!(config.limits.connect_timeout, Duration::from_secs(10));
        assert_eq!(config.limits.max_connections, 10, "file value kept");
        assert_eq!(config.auth.jwt_secret.unwrap().expose(), "from-env");
        assert!(config.auth.allow_anonymous);
        assert_eq!(config.http.listen, addr("[::1]:8081"));
        assert_eq!(config.http.header_timeout, Duration::from_secs(2));
        assert_eq!(
            config.cluster.nats,
            ["nats://10.0.0.2:4222", "tls://10.0.0.3:4443"]
        );
        Ok(())
    });
}

#[test]
fn env_without_file() {
    Jail::expect_with(|jail| {
        jail.set_env("ROOST_LIMITS__MAX_PACKET_SIZE", "2048");
        jail.set_env("ROOST_NODE__DATA_DIR", "/var/lib/roost");
        let config = load(None).unwrap();
        assert_eq!(config.limits.max_packet_size, 2048);
        assert_eq!(config.node.data_dir, PathBuf::from("/var/lib/roost"));
        Ok(())
    });
}

#[test]
fn env_acl_rules() {
    Jail::expect_with(|jail| {
        jail.set_env(
            "ROOST_ACL__RULES",
            r#"[{permission="allow", action="subscribe", topic="news/#"}]"#,
        );
        let config = load(None).unwrap();
        assert_eq!(
            config.acl.rules,
            [AclRule {
                permission: Permission::Allow,
                action: Action::Subscribe,
                topic: "news/#".into(),
            }]
        );
        Ok(())
    });
}

#[test]
fn env_strings_are_verbatim() {
    Jail::expect_with(|jail| {
        // figment alone would make these a number, a boolean and an array.
        jail.set_env("ROOST_AUTH__JWT_SECRET", "0123");
        jail.set_env("ROOST_AUTH__ISSUER", "true");
        jail.set_env("ROOST_AUTH__AUDIENCE", "[roost]");
        jail.set_env("ROOST_CLUSTER__NODE_ID", "7");
        jail.set_env("ROOST_CLUSTER__NATS", "nats://a:4222");
        jail.set_env("ROOST_CLUSTER__NATS_TOKEN", "0123");
        jail.set_env("ROOST_HISTORY__DATABASE_URL", "postgres://h/db");
        let config = load(None).unwrap();
        assert_eq!(config.auth.jwt_secret.unwrap().expose(), "0123");
        assert_eq!(config.auth.issuer.as_deref(), Some("true"));
        assert_eq!(config.auth.audience.as_deref(), Some("[roost]"));
        assert_eq!(config.cluster.node_id.as_deref(), Some("7"));
        assert_eq!(config.cluster.nats_token.unwrap().expose(), "0123");
        Ok(())
    });
}

#[test]
fn other_roost_variables_are_ignored() {
    Jail::expect_with(|jail| {
        jail.set_env("ROOST_TOKEN", "eyJhbGciOiJIUzI1NiJ9.e30.sig");
        jail.set_env("ROOST_LOG", "debug");
        jail.set_env("ROOST_CONFIG", "/etc/roost.toml");
        assert_eq!(load(None).unwrap(), Config::default());
        Ok(())
    });
}

#[test]
fn unknown_key_in_file() {
    Jail::expect_with(|jail| {
        let error = load_toml(jail, "[mqtt]\nlisen = \"0.0.0.0:1883\"\n").unwrap_err();
        match &error {
            ConfigError::UnknownKey { key, origin } => {
                assert_eq!(key, "mqtt.lisen");
                assert_eq!(origin, &Origin::File(FILE.into()));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            error.to_string(),
            "unknown key `mqtt.lisen` (in roost.toml)"
        );

        let error = load_toml(jail, "[mqttt]\nlisten = \"0.0.0.0:1883\"\n").unwrap_err();
        assert_eq!(error.to_string(), "unknown key `mqttt` (in roost.toml)");

        let error = load_toml(
            jail,
            "[[acl.rules]]\npermission = \"allow\"\naction = \"all\"\ntopic = \"a/#\"\nqos = 1\n",
        )
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "unknown key `acl.rules.0.qos` (in roost.toml)"
        );
        Ok(())
    });
}

#[test]
fn unknown_key_in_env() {
    Jail::expect_with(|jail| {
        jail.set_env("ROOST_MQTT__LISEN", "0.0.0.0:1883");
        let error = load(None).unwrap_err();
        match &error {
            ConfigError::UnknownKey { key, origin } => {
                assert_eq!(key, "mqtt.lisen");
                assert_eq!(origin, &Origin::Env("ROOST_MQTT__LISEN".into()));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            error.to_string(),
            "unknown key `mqtt.lisen` (from environment variable ROOST_MQTT__LISEN)"
        );
        Ok(())
    });
    Jail::expect_with(|jail| {
        jail.set_env("ROOST_MQTTT__LISTEN", "0.0.0.0:1883");
        let error = load(None).unwrap_err();
        assert_eq!(
            error.to_string(),
            "unknown key `mqttt` (from environment variable ROOST_MQTTT__LISTEN)"
        );
        Ok(())
    });
    Jail::expect_with(|jail| {
        jail.set_env(
            "ROOST_ACL__RULES",
            r#"[{permission="allow", action="all", topic="a/#", qos=1}]"#,
        );
        let error = load(None).unwrap_err();
        assert_eq!(
            error.to_string(),
            "unknown key `acl.rules.0.qos` (from environment variable ROOST_ACL__RULES)"
        );
        Ok(())
    });
}

#[test]
fn missing_file() {
    Jail::expect_with(|_| {
        let error = load(Some(Path::new("nope.toml"))).unwrap_err();
        match &error {
            ConfigError::Read { path, source } => {
                assert_eq!(path, Path::new("nope.toml"));
                assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
            }
            other => panic!("{other:?}"),
        }
        assert!(error.to_string().contains("nope.toml"), "{error}");
        Ok(())
    });
}

#[test]
fn toml_syntax_error_names_the_file() {
    Jail::expect_with(|jail| {
        let error = load_toml(jail, "[mqtt\nlisten = 1").unwrap_err();
        assert!(matches!(error, ConfigError::Syntax { .. }), "{error:?}");
        assert!(error.to_string().starts_with("in roost.toml: "), "{error}");
        Ok(())
    });
}

#[test]
fn bad_values_name_key_and_source() {
    Jail::expect_with(|jail| {
        let error = assert_invalid(
            load_toml(jail, "[mqtt]\nlisten = \"nonsense\"\n"),
            "mqtt.listen",
            "socket address",
        );
        assert!(error.to_string().ends_with("(in roost.toml)"), "{error}");

        assert_invalid(
            load_toml(jail, "[limits]\nconnect_timeout = \"soon\"\n"),
            "limits.connect_timeout",
            "",
        );
        assert_invalid(
            load_toml(jail, "[limits]\nmax_connections = -1\n"),
            "limits.max_connections",
            "",
        );
        assert_invalid(
            load_toml(jail, "[limits]\nreceive_maximum = 70000\n"),
            "limits.receive_maximum",
            "",
        );
        assert_invalid(
            load_toml(jail, "[auth]\nallow_anonymous = \"yes\"\n"),
            "auth.allow_anonymous",
            "",
        );
        let error = load_toml(
            jail,
            "[[acl.rules]]\npermission = \"maybe\"\naction = \"all\"\ntopic = \"a/#\"\n",
        )
        .unwrap_err();
        let message = error.to_string();
        assert!(message.starts_with("acl.rules"), "{message}");
        assert!(message.contains("maybe"), "{message}");

        jail.create_file(FILE, "")?;
        jail.set_env("ROOST_MQTT__LISTEN", "nonsense");
        let error = assert_invalid(load(None), "mqtt.listen", "socket address");
        assert!(
            error
                .to_string()
                .ends_with("(from environment variable ROOST_MQTT__LISTEN)"),
            "{error}"
        );
        Ok(())
    });
}

#[test]
fn tls_listeners_need_cert_and_key() {
    Jail::expect_with(|jail| {
        let error = assert_invalid(
            load_toml(jail, "[mqtt]\ntls_listen = \"0.0.0.0:8883\"\n"),
            "mqtt.tls_listen",
            "requires mqtt.tls_cert and mqtt.tls_key",
        );
        assert!(error.to_string().ends_with("(in roost.toml)"), "{error}");
        assert_invalid(
            load_toml(
                jail,
                "[mqtt]\nwss_listen = \"0.0.0.0:8884\"\ntls_cert = \"c.pem\"\n",
            ),
            "mqtt.wss_listen",
            "requires mqtt.tls_key",
        );
        assert_invalid(
            load_toml(
                jail,
                "[mqtt]\ntls_listen = \"0.0.0.0:8883\"\ntls_key = \"k.pem\"\n",
            ),
            "mqtt.tls_listen",
            "requires mqtt.tls_cert",
        );
        let config = load_toml(
            jail,
            "[mqtt]\nwss_listen = \"0.0.0.0:8884\"\ntls_cert = \"c.pem\"\ntls_key = \"k.pem\"\n",
        )
        .unwrap();
        assert_eq!(config.mqtt.wss_listen, Some(addr("0.0.0.0:8884")));

        // Certificate files alone, without a TLS listener, are harmless.
        load_toml(jail, "[mqtt]\ntls_cert = \"c.pem\"\ntls_key = \"k.pem\"\n").unwrap();
        Ok(())
    });
}

#[test]
fn limits_ranges() {
    Jail::expect_with(|jail| {
        let limits = |line: &str| format!("[limits]\n{line}\n");
        for ok in [
            "max_packet_size = 1024",
            "max_packet_size = 268435455",
            "receive_maximum = 1",
            "receive_maximum = 65535",
            "topic_alias_maximum = 0",
            "topic_alias_maximum = 65535",
            "max_connections = 1",
            "connect_timeout = \"1ms\"",
            "connect_timeout = \"1m 30s\"",
            "max_subscriptions = 1",
        ] {
            load_toml(jail, &limits(ok)).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for (bad, key, needle) in [
            (
                "max_packet_size = 1023",
                "limits.max_packet_size",
                "between 1024 and 268435455",
            ),
            (
                "max_packet_size = 268435456",
                "limits.max_packet_size",
                "out of range",
            ),
            (
                "receive_maximum = 0",
                "limits.receive_maximum",
                "at least 1",
            ),
            (
                "max_connections = 0",
                "limits.max_connections",
                "at least 1",
            ),
            (
                "connect_timeout = \"0s\"",
                "limits.connect_timeout",
                "greater than 0",
            ),
            (
                "max_subscriptions = 0",
                "limits.max_subscriptions",
                "at least 1",
            ),
        ] {
            let error = assert_invalid(load_toml(jail, &limits(bad)), key, needle);
            assert!(error.to_string().ends_with("(in roost.toml)"), "{error}");
        }
        Ok(())
    });
}

#[test]
fn http_limits_ranges() {
    Jail::expect_with(|jail| {
        let http = |line: &str| format!("[http]\n{line}\n");
        load_toml(jail, &http("max_connections = 1")).unwrap();
        load_toml(jail, &http("header_timeout = \"500ms\"")).unwrap();
        assert_invalid(
            load_toml(jail, &http("max_connections = 0")),
            "http.max_connections",
            "at least 1",
        );
        assert_invalid(
            load_toml(jail, &http("header_timeout = \"0s\"")),
            "http.header_timeout",
            "greater than 0",
        );
        let config = load_toml(
            jail,
            &http(r#"cors_origins = ["https://chat.example", "http://localhost:3000"]"#),
        )
        .unwrap();
        assert_eq!(
            config.http.cors_origins,
            ["https://chat.example", "http://localhost:3000"]
        );
        for bad in ["*", "chat.example", "https://chat.example/app", "ftp://x"] {
            assert_invalid(
                load_toml(jail, &http(&format!("cors_origins = [{bad:?}]"))),
                "http.cors_origins",
                "is not an origin",
            );
        }
        Ok(())
    });
}

#[test]
fn validation_errors_name_the_variable() {
    Jail::expect_with(|jail| {
        jail.set_env("ROOST_LIMITS__RECEIVE_MAXIMUM", "0");
        let error = assert_invalid(load(None), "limits.receive_maximum", "at least 1");
        assert!(
            error
                .to_string()
                .ends_with("(from environment variable ROOST_LIMITS__RECEIVE_MAXIMUM)"),
            "{error}"
        );
        Ok(())
    });
}

#[test]
fn history_database_url() {
    Jail::expect_with(|jail| {
        for ok in [
            "sqlite://roost-data/history.db",
            "sqlite::memory:",
            "postgres://user@host/db",
            "postgresql://user:pw@host:5432/db",
        ] {
            let toml = format!("[history]\ndatabase_url = \"{ok}\"\n");
            let config = load_toml(jail, &toml).unwrap_or_else(|e| panic!("{ok}: {e}"));
            assert_eq!(config.history.database_url.as_deref(), Some(ok));
        }
        for bad in ["mysql://host/db", "history.db", ""] {
            let toml = format!("[history]\ndatabase_url = \"{bad}\"\n");
            assert_invalid(load_toml(jail, &toml), "history.database_url", "sqlite:");
        }
        // The driver would log an unknown parameter with its value: refused, key only.
        let toml =
            "[history]\ndatabase_url = \"postgres://u@h/db?sslmode=disable&pasword=hunter2\"\n";
        let error = assert_invalid(load_toml(jail, toml), "history.database_url", "`pasword`");
        assert!(!error.to_string().contains("hunter2"), "{error}");
        let toml = "[history]\ndatabase_url = \"mysql://u:hunter2@h/db\"\n";
        let error = assert_invalid(load_toml(jail, toml), "history.database_url", "sqlite:");
        assert!(!error.to_string().contains("hunter2"), "{error}");
        let ok = "postgres://u@h/db?sslmode=require&application_name=roost&options[search_path]=im";
        let toml = format!("[history]\ndatabase_url = \"{ok}\"\n");
        load_toml(jail, &toml).unwrap_or_else(|e| panic!("{ok}: {e}"));
        Ok(())
    });
}

/// A clustered config: one NATS server and the shared PostgreSQL history, plus `extra`.
fn clustered(extra: &str) -> String {
    format!(
        "[history]\ndatabase_url = \"postgres://db/roost\"\n\
         [cluster]\nnats = [\"nats://n1:4222\"]\n{extra}"
    )
}

#[test]
fn history_delivery() {
    Jail::expect_with(|jail| {
        let mut delivery = |toml: &str| load_toml(jail, toml).map(|c| c.history.delivery());
        assert_eq!(delivery("").unwrap(), Delivery::Stamped);
        assert_eq!(
            delivery("[history]\nservice = false\n").unwrap(),
            Delivery::Direct
        );
        assert_eq!(
            delivery("[history]\ndelivery = \"direct\"\n").unwrap(),
            Delivery::Direct
        );
        assert_eq!(
            delivery("[history]\nservice = false\ndelivery = \"stamped\"\n").unwrap(),
            Delivery::Stamped
        );
        assert!(delivery("[history]\ndelivery = \"later\"\n").is_err());
        jail.set_env("ROOST_HISTORY__DELIVERY", "direct");
        assert_eq!(load(None).unwrap().history.delivery(), Delivery::Direct);
        Ok(())
    });
}

#[test]
fn history_pool_size() {
    Jail::expect_with(|jail| {
        assert_eq!(load_toml(jail, "").unwrap().history.pool_size, None);
        let config = load_toml(jail, "[history]\npool_size = 20\n").unwrap();
        assert_eq!(config.history.pool_size, Some(20));
        for bad in [0, 101] {
            let toml = format!("[history]\npool_size = {bad}\n");
            assert_invalid(
                load_toml(jail, &toml),
                "history.pool_size",
                "between 1 and 100",
            );
        }
        jail.set_env("ROOST_HISTORY__POOL_SIZE", "2");
        assert_eq!(load_toml(jail, "").unwrap().history.pool_size, Some(2));
        Ok(())
    });
}

#[test]
fn cluster_keys() {
    Jail::expect_with(|jail| {
        assert_invalid(
            load_toml(jail, &clustered("").replace("nats://n1:4222", "n1:4222")),
            "cluster.nats",
            "`n1:4222`: must be a nats://host:port",
        );
        assert_invalid(
            load_toml(jail, &clustered("").replace("nats://n1", "nats://u:pw@n1")),
            "cluster.nats",
            "must not hold credentials",
        );
        assert_invalid(
            load_toml(jail, &clustered("node_id = \"pi 1\"\n")),
            "cluster.node_id",
            "1 to 64 characters",
        );
        assert_invalid(
            load_toml(jail, &clustered("subject_prefix = \"roost.*\"\n")),
            "cluster.subject_prefix",
            "tokens",
        );
        assert_invalid(
            load_toml(jail, &clustered("node_timeout = \"500ms\"\n")),
            "cluster.node_timeout",
            "at least 1s",
        );
        assert_invalid(
            load_toml(jail, &clustered("nats_user = \"u\"\n")),
            "cluster.nats_user",
            "requires cluster.nats_password",
        );
        assert_invalid(
            load_toml(jail, &clustered("nats_password = \"p\"\n")),
            "cluster.nats_password",
            "requires cluster.nats_user",
        );
        assert_invalid(
            load_toml(jail, "[cluster]\nnode_id = \"pi1\"\n"),
            "cluster.nats",
            "when cluster.node_id is set",
        );

        let config = load_toml(jail, &clustered("node_timeout = \"3s\"\n")).unwrap();
        assert!(config.cluster.enabled());
        assert_eq!(config.cluster.node_timeout, Duration::from_secs(3));
        assert_eq!(config.cluster.subject_prefix, "roost");
        // No node_id: the host name, which check-config then shows.
        let host = gethostname::gethostname().into_string().unwrap();
        assert_eq!(config.cluster.node_id.as_deref(), Some(host.as_str()));
        assert!(config
            .to_masked_toml()
            .contains(&format!("node_id = \"{host}\"")));

        let alone = load(None).unwrap();
        assert!(!alone.cluster.enabled());
        assert_eq!(
            alone.cluster.node_id, None,
            "no host name without a cluster"
        );
        Ok(())
    });
}

#[test]
fn cluster_needs_postgres_history() {
    Jail::expect_with(|jail| {
        for history in ["", "[history]\ndatabase_url = \"sqlite://h.db\"\n"] {
            let toml = format!("{history}[cluster]\nnats = [\"nats://n1:4222\"]\n");
            assert_invalid(
                load_toml(jail, &toml),
                "history.database_url",
                "SQLite is a file private to each node",
            );
        }
        jail.set_env("ROOST_CLUSTER__NATS", "nats://n1:4222,nats://n2:4222");
        assert_invalid(load(None), "history.database_url", "postgres://");
        jail.set_env("ROOST_HISTORY__DATABASE_URL", "postgresql://db/roost");
        assert_eq!(load(None).unwrap().cluster.nats.len(), 2);
        Ok(())
    });
}

#[test]
fn other_rules() {
    Jail::expect_with(|jail| {
        assert_invalid(
            load_toml(jail, "[auth]\njwt_secret = \"\"\n"),
            "auth.jwt_secret",
            "must not be empty",
        );
        assert_invalid(
            load_toml(jail, "[node]\ndata_dir = \"\"\n"),
            "node.data_dir",
            "must not be empty",
        );
        Ok(())
    });
}

#[test]
fn masked_toml_round_trips() {
    Jail::expect_with(|jail| {
        let toml = OPERATING_FULL
            .replace(r#"jwt_secret = "...""#, r#"jwt_secret = "s3cr3t-hs256""#)
            .replace(
                "postgres://roost@db.example/roost",
                "postgres://roost:pgpass@db.example/roost",
            );
        let config = load_toml(jail, &toml).unwrap();
        assert_eq!(
            config.auth.jwt_secret.as_ref().unwrap().expose(),
            "s3cr3t-hs256"
        );

        let shown = config.to_masked_toml();
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(!shown.contains("pgpass"), "{shown}");
        assert!(shown.contains(r#"jwt_secret = "***""#), "{shown}");

        jail.create_file("shown.toml", &shown)?;
        let reloaded = load(Some(Path::new("shown.toml"))).unwrap();
        let mut expected = config.clone();
        expected.auth.jwt_secret = Some(Secret::new("***".into()));
        expected.history.database_url = Some("postgres://roost:***@db.example/roost".into());
        assert_eq!(reloaded, expected);
        Ok(())
    });
}

#[test]
fn masked_toml_of_defaults_round_trips() {
    Jail::expect_with(|jail| {
        let shown = Config::default().to_masked_toml();
        jail.create_file("shown.toml", &shown)?;
        assert_eq!(
            load(Some(Path::new("shown.toml"))).unwrap(),
            Config::default()
        );
        Ok(())
    });
}

#[test]
fn debug_does_not_leak_the_secret() {
    let mut config = Config::default();
    config.auth.jwt_secret = Some(Secret::new("hunter2".into()));
    let debug = format!("{config:?}");
    assert!(!debug.contains("hunter2"), "{debug}");
}
