//! Driving a real headless Chromium from a test: chromedriver (Debian `chromium-driver`) on
//! a free port, spoken to in W3C WebDriver (JSON over HTTP) with the tests' hyper client.
//! The dozen commands the web app's tests need are a few lines each here, which keeps the
//! webdriver crate's dependency tree out of the build.
//!
//! Waiting is always on a condition in the page, polled until a deadline ([`Browser::wait`]),
//! never a fixed sleep.

use super::http::call;
use super::tools::require;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The key of a W3C element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// How long a page gets to reach a state the test waits for.
pub const PAGE_WAIT: Duration = Duration::from_secs(20);

/// A chromedriver process. It and the browsers it started are killed when dropped.
pub struct Driver {
    child: Child,
    addr: SocketAddr,
}

impl Driver {
    pub async fn start() -> Driver {
        require("chromedriver");
        require("chromium");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group, so Drop ends the browsers with it.
            .process_group(0)
            .spawn()
            .expect("start chromedriver");
        let driver = Driver {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        };
        let deadline = Instant::now() + PAGE_WAIT;
        loop {
            if tokio::net::TcpStream::connect(driver.addr).await.is_ok() {
                let status = call(driver.addr, "GET", "/status", &[], "").await.json();
                if status["value"]["ready"] == json!(true) {
                    return driver;
                }
            }
            assert!(Instant::now() < deadline, "chromedriver did not get ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A new browser (its own profile: storage, cookies) with a window of `width` x
    /// `height`, or a phone's screen (390 x 844 CSS pixels, touch) when `phone`.
    pub async fn browser(&self, width: u32, height: u32, phone: bool) -> Browser {
        let mut options = json!({"args": [
            "--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
            "--disable-gpu", format!("--window-size={width},{height}"),
        ]});
        if phone {
            options["mobileEmulation"] = json!({"deviceMetrics":
                {"width": 390, "height": 844, "pixelRatio": 2.0, "touch": true}});
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome", "goog:chromeOptions": options,
        }}});
        let value = command(self.addr, "POST", "/session", caps).await;
        Browser {
            driver: self.addr,
            session: value["sessionId"]
                .as_str()
                .expect("a session id")
                .to_owned(),
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // SIGKILL to the whole group: chromedriver and every browser process it started.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.wait();
    }
}

/// One browser session: a window and its tabs.
pub struct Browser {
    driver: SocketAddr,
    session: String,
}

impl Browser {
    async fn cmd(&self, method: &str, path: &str, body: Value) -> Value {
        let path = format!("/session/{}{path}", self.session);
        command(self.driver, method, &path, body).await
    }

    pub async fn goto(&self, url: &str) {
        self.cmd("POST", "/url", json!({"url": url})).await;
    }

    /// The browser's Back button.
    pub async fn back(&self) {
        self.cmd("POST", "/back", json!({})).await;
    }

    pub async fn refresh(&self) {
        self.cmd("POST", "/refresh", json!({})).await;
    }

    /// Runs `script` (a function body; `arguments[i]` are `args`) in the page.
    pub async fn js(&self, script: &str, args: Value) -> Value {
        self.cmd(
            "POST",
            "/execute/sync",
            json!({"script": script, "args": args}),
        )
        .await
    }

    /// Waits until `script` returns something truthy and returns it; panics after
    /// [`PAGE_WAIT`] saying `what` did not happen, with the page's text.
    pub async fn wait(&self, what: &str, script: &str, args: Value) -> Value {
        let deadline = Instant::now() + PAGE_WAIT;
        loop {
            let value = self.js(script, args.clone()).await;
            let truthy = match &value {
                Value::Null | Value::Bool(false) => false,
                Value::String(s) => !s.is_empty(),
                Value::Number(n) => n.as_f64() != Some(0.0),
                _ => true,
            };
            if truthy {
                return value;
            }
            if Instant::now() >= deadline {
                let text = self.js("return document.body.innerText", json!([])).await;
                panic!("{what}: not within {PAGE_WAIT:?}; the page shows:\n{text}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn element(&self, css: &str) -> String {
        let found = self
            .cmd(
                "POST",
                "/element",
                json!({"using": "css selector", "value": css}),
            )
            .await;
        found[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element {css}: {found}"))
            .to_owned()
    }

    /// Clicks the element `css` as a user would (scrolled into view, hit-tested), once it
    /// is there (until [`PAGE_WAIT`]). The app re-renders lists as messages arrive, so an
    /// element found may be replaced before the click lands: then it is found again.
    pub async fn click(&self, css: &str) {
        let deadline = Instant::now() + PAGE_WAIT;
        let find = json!({"using": "css selector", "value": css});
        loop {
            let path = format!("/session/{}/element", self.session);
            let (status, found) = try_command(self.driver, "POST", &path, find.clone()).await;
            let (status, value) = match found[ELEMENT].as_str() {
                Some(id) if status == 200 => {
                    let path = format!("/session/{}/element/{id}/click", self.session);
                    try_command(self.driver, "POST", &path, json!({})).await
                }
                _ => (status, found),
            };
            if status == 200 {
                return;
            }
            let retry = ["stale element reference", "no such element"]
                .contains(&value["error"].as_str().unwrap_or(""));
            assert!(
                retry && Instant::now() < deadline,
                "clicking {css}: {status} {value}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Types `text` into the element `css` as key presses.
    pub async fn type_into(&self, css: &str, text: &str) {
        let id = self.element(css).await;
        self.cmd(
            "POST",
            &format!("/element/{id}/value"),
            json!({"text": text}),
        )
        .await;
    }

    /// A PNG of what the window shows.
    pub async fn screenshot(&self) -> Vec<u8> {
        let b64 = self.cmd("GET", "/screenshot", Value::Null).await;
        base64_decode(b64.as_str().expect("base64 PNG"))
    }

    /// Opens a new tab (a fresh page, same profile) and switches to it.
    pub async fn new_tab(&self) -> String {
        let tab = self
            .cmd("POST", "/window/new", json!({"type": "tab"}))
            .await;
        let handle = tab["handle"].as_str().expect("a window handle").to_owned();
        self.switch_to(&handle).await;
        handle
    }

    pub async fn current_tab(&self) -> String {
        let handle = self.cmd("GET", "/window", Value::Null).await;
        handle.as_str().expect("a window handle").to_owned()
    }

    pub async fn switch_to(&self, handle: &str) {
        self.cmd("POST", "/window", json!({"handle": handle})).await;
    }

    /// Ends the session (its browser closes).
    pub async fn quit(self) {
        command(
            self.driver,
            "DELETE",
            &format!("/session/{}", self.session),
            Value::Null,
        )
        .await;
    }
}

/// A WebDriver command; its `value`, or a panic with the driver's error.
async fn command(driver: SocketAddr, method: &str, path: &str, body: Value) -> Value {
    let (status, value) = try_command(driver, method, path, body).await;
    assert!(status == 200, "WebDriver {method} {path}: {status} {value}");
    value
}

/// A WebDriver command: the HTTP status and the answer's `value` (an error object unless
/// the status is 200).
async fn try_command(driver: SocketAddr, method: &str, path: &str, body: Value) -> (u16, Value) {
    let body = if body.is_null() {
        Vec::new()
    } else {
        body.to_string().into_bytes()
    };
    let reply = call(
        driver,
        method,
        path,
        &[("content-type", "application/json")],
        body,
    )
    .await;
    let mut answer = reply.json();
    (reply.status, answer["value"].take())
}

/// Standard base64 (screenshots), without a crate for it.
fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    };
    let digits: Vec<u8> = text
        .bytes()
        .filter(|c| !c.is_ascii_whitespace() && *c != b'=')
        .map(value)
        .collect();
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    for chunk in digits.chunks(4) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, d)| n | (u32::from(*d) << (18 - 6 * i)));
        out.extend_from_slice(&n.to_be_bytes()[1..chunk.len()]);
    }
    out
}
