//! The real binary, killed with SIGKILL right after an admin change was acknowledged: after a
//! restart the change is there. Also checks the offline CLI against the same data directory.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Test code: a failed unwrap is a failed test.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const CONFIG: &str = r#"
admin_realm = "junction.admin"

[[realms]]
name = "junction.admin"
anonymous = false

[realms.security]
authmethods = ["ticket"]

[[realms.security.users]]
authid = "root"
password = "rootpw"

[[realms.security.grants]]
permissions = ["all"]
uri = ""
match = "prefix"
roles = ["root"]
"#;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Router {
    child: Child,
}

impl Router {
    // No runtime here: waiting for the port with a blocking sleep is the plain way.
    #[allow(clippy::disallowed_methods)]
    fn start(dir: &std::path::Path, port: u16) -> Self {
        let child = Command::new(env!("CARGO_BIN_EXE_junction"))
            .args(["serve", "--config"])
            .arg(dir.join("junction.toml"))
            .args(["--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
            .arg(dir.join("data"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("junction starts");
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "junction did not start listening");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { child }
    }

    /// SIGKILL: no shutdown path runs.
    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Router {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A blocking RawSocket/JSON client.
struct Client(TcpStream);

impl Client {
    fn connect(port: u16) -> Self {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(&[0x7F, 0xF1, 0, 0]).unwrap();
        let mut reply = [0u8; 4];
        s.read_exact(&mut reply).unwrap();
        assert_eq!(reply[0], 0x7F);
        Self(s)
    }

    fn send(&mut self, message: Value) {
        let body = message.to_string();
        let len = body.len() as u32;
        self.0.write_all(&len.to_be_bytes()).unwrap();
        self.0.write_all(body.as_bytes()).unwrap();
    }

    fn recv(&mut self) -> Value {
        let mut header = [0u8; 4];
        self.0.read_exact(&mut header).unwrap();
        let len = (u32::from_be_bytes(header) & 0x00FF_FFFF) as usize;
        let mut body = vec![0; len];
        self.0.read_exact(&mut body).unwrap();
        serde_json::from_slice(&body).unwrap()
    }

    /// Joins with ticket authentication; returns WELCOME or ABORT.
    fn login(port: u16, realm: &str, authid: &str, ticket: &str) -> (Self, Value) {
        let mut c = Self::connect(port);
        c.send(json!([1, realm, {"roles": {"caller": {}}, "authid": authid, "authmethods": ["ticket"]}]));
        let challenge = c.recv();
        assert_eq!(challenge[0], 4, "{challenge}");
        c.send(json!([5, ticket, {}]));
        let reply = c.recv();
        (c, reply)
    }

    fn call(&mut self, request: u64, procedure: &str, args: Value) -> Value {
        self.send(json!([48, request, {}, procedure, args]));
        self.recv()
    }
}

#[test]
fn an_acknowledged_admin_change_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("junction.toml"), CONFIG).unwrap();
    let port = free_port();
    let router = Router::start(dir.path(), port);
    let (mut root, welcome) = Client::login(port, "junction.admin", "root", "rootpw");
    assert_eq!(welcome[0], 2, "{welcome}");
    let created = root.call(
        1,
        "bondy.realm.create",
        json!([{"uri": "com.durable", "authmethods": ["ticket"]}]),
    );
    assert_eq!(created[0], 50, "{created}");
    let added = root.call(
        2,
        "bondy.user.add",
        json!(["com.durable", {"username": "dora", "password": "pw"}]),
    );
    assert_eq!(added[0], 50, "{added}");
    router.kill();

    let router = Router::start(dir.path(), port);
    let (_dora, welcome) = Client::login(port, "com.durable", "dora", "pw");
    assert_eq!(welcome[0], 2, "the user added before kill -9 can log in: {welcome}");
    assert_eq!(welcome[2]["authid"], "dora");
    let (_root, welcome) = Client::login(port, "junction.admin", "root", "rootpw");
    assert_eq!(welcome[0], 2, "config-declared users are still there");
    drop(router);

    // The offline CLI sees and changes the same store.
    let cli = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_junction"))
            .args(args)
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .output()
            .unwrap();
        (output.status.success(), String::from_utf8_lossy(&output.stdout).into_owned())
    };
    let (ok, users) = cli(&["user", "list", "com.durable"]);
    assert!(ok && users.contains("\"dora\""), "{users}");
    let (ok, _) = cli(&["user", "passwd", "com.durable", "dora", "newpw"]);
    assert!(ok);
    let (ok, _) = cli(&["user", "add", "com.durable", "dora"]);
    assert!(!ok, "adding an existing user fails");
    let _router = Router::start(dir.path(), port);
    assert_eq!(
        Client::login(port, "com.durable", "dora", "pw").1[2],
        "wamp.error.authentication_failed"
    );
    assert_eq!(Client::login(port, "com.durable", "dora", "newpw").1[0], 2);
}
