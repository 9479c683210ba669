//! A browser-less console user for the console's HTTP tests: signs in with a token, keeps
//! the session cookie and CSRF token, and GETs and POSTs forms as the console's own pages do.

/// A browser-less console user: its session cookie and CSRF token.
pub struct User {
    admin: String,
    /// The `Cookie` header that carries the session.
    pub cookie: String,
    csrf: String,
}

/// A client that shows redirects rather than following them, and keeps no cookies.
pub fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// A page's answer: status, `Location`, body.
pub struct Answer {
    pub status: u16,
    pub location: String,
    pub html: String,
}

impl User {
    pub async fn sign_in(admin: &str, token: &str) -> User {
        let r = http()
            .post(format!("{admin}/console/sign-in"))
            .header("origin", admin)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("token={token}"))
            .send()
            .await
            .expect("sent");
        assert_eq!(r.status(), 303);
        let set = r
            .headers()
            .get("set-cookie")
            .and_then(|v| v.to_str().ok())
            .expect("a session cookie");
        let cookie = set.split(';').next().unwrap_or("").to_string();
        let mut user = User {
            admin: admin.to_string(),
            cookie,
            csrf: String::new(),
        };
        let page = user.get("/console/endpoints").await.html;
        let at = page.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
        user.csrf = page[at..at + 64].to_string();
        user
    }

    async fn answer(r: reqwest::RequestBuilder) -> Answer {
        let r = r.send().await.expect("sent");
        Answer {
            status: r.status().as_u16(),
            location: r
                .headers()
                .get("location")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string(),
            html: r.text().await.expect("body"),
        }
    }

    pub async fn get(&self, path: &str) -> Answer {
        User::answer(
            http()
                .get(format!("{}{path}", self.admin))
                .header("cookie", &self.cookie),
        )
        .await
    }

    /// POSTs a form with the session's CSRF token and the console's own `Origin`.
    pub async fn post(&self, path: &str, fields: &[(&str, &str)]) -> Answer {
        let mut body = url::form_urlencoded::Serializer::new(String::new());
        body.append_pair("csrf", &self.csrf);
        for (k, v) in fields {
            body.append_pair(k, v);
        }
        User::answer(
            http()
                .post(format!("{}{path}", self.admin))
                .header("cookie", &self.cookie)
                .header("origin", &self.admin)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body.finish()),
        )
        .await
    }
}
