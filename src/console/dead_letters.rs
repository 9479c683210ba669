//! `GET /console/dead-letters` (filtered, cursor-paged, most recently dead first) and
//! `GET /console/dead-letters/replay` (how many a replay of the filter would requeue, and the
//! form that confirms it).
//!
//! **A replay by filter targets every match, not just the page shown**: the confirmation
//! counts the matches (up to [`COUNT_LIMIT`], then it says "at least") and the replay itself
//! runs the API's replay over the whole filter.

use askama::Template;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;

use super::events::FilterForm;
use super::page::{self, Chrome};
use super::{Shared, Signed};
use crate::api::access::Role;
use crate::api::views::DeadLetterView;
use crate::api::{grammar, params};
use crate::store::query::{Filter, parse_dead_cursor};

use crate::api::dead_letters::FILTERS;

/// The most matches a confirmation counts, and the most pages it reads (each looks at a
/// bounded number of rows); past either, it says "at least".
pub const COUNT_LIMIT: usize = 10_000;
const COUNT_PAGES: usize = 20;

#[derive(Template)]
#[template(path = "console/dead_letters.html")]
struct List {
    chrome: Chrome,
    form: FilterForm,
    endpoints: Vec<String>,
    error: Option<String>,
    rows: Vec<DeadLetterView>,
    next: Option<String>,
    searched_to: Option<String>,
    can_operate: bool,
    /// The filter's query string, for the replay link.
    filter_query: String,
    notice: Option<String>,
    contains_max: usize,
}

fn parse(
    st: &Shared,
    q: Option<&str>,
) -> (FilterForm, Result<params::ListQuery, params::ApiError>) {
    let (form, api_query) = FilterForm::parse(q);
    let parsed = params::list_query(
        Some(&api_query),
        FILTERS,
        grammar::dead_letter_cursor_ok,
        st.now_ms(),
    );
    (form, parsed)
}

/// What a replay reported back through the URL.
fn notice(q: Option<&str>) -> Option<String> {
    let mut replayed = None;
    let mut removed = 0u64;
    for (k, v) in url::form_urlencoded::parse(q.unwrap_or("").as_bytes()) {
        match k.as_ref() {
            "replayed" => replayed = v.parse::<u64>().ok(),
            "removed" => removed = v.parse().unwrap_or(0),
            _ => {}
        }
    }
    let n = replayed?;
    let mut text = if n == 1 {
        "1 dead letter is queued to be sent again.".to_string()
    } else {
        format!("{n} dead letters are queued to be sent again.")
    };
    if removed > 0 {
        text.push_str(&format!(
            " {removed} more belong to endpoints that no longer exist and stay dead."
        ));
    }
    Some(text)
}

pub async fn list(State(st): State<Shared>, user: Signed, RawQuery(q): RawQuery) -> Response {
    let (form, parsed) = parse(&st, q.as_deref());
    let mut view = List {
        chrome: Chrome::new("dead-letters", "Dead letters", &user),
        filter_query: form.query(""),
        form,
        endpoints: st.admin.routes.current().endpoint_ids(),
        error: None,
        rows: Vec::new(),
        next: None,
        searched_to: None,
        can_operate: user.may(Role::Operator),
        notice: notice(q.as_deref()),
        contains_max: crate::store::query::MAX_CONTAINS_CHARS,
    };
    let listed = async {
        let q = parsed?;
        let page = st
            .admin
            .store
            .list_dead(&q.filter, q.limit, q.cursor.as_deref())
            .await?;
        Ok::<_, params::ApiError>((q.limit, page))
    }
    .await;
    match listed {
        Err(e) => {
            let status = e.status;
            view.error = Some(e.message);
            return page::render(status, &view);
        }
        Ok((limit, page)) => {
            let paged = page::paged(
                &page.items,
                limit,
                page.next_cursor,
                |d| {
                    let mut v = DeadLetterView::from(d);
                    v.dead_at = page::short_time(&v.dead_at);
                    v
                },
                |cursor| format!("/console/dead-letters{}", view.form.query(cursor)),
                |cursor| parse_dead_cursor(cursor).ok().map(|(ms, _)| ms),
            );
            (view.rows, view.next, view.searched_to) = (paged.rows, paged.next, paged.searched_to);
        }
    }
    page::render(StatusCode::OK, &view)
}

#[derive(Template)]
#[template(path = "console/replay_confirm.html")]
struct Confirm {
    chrome: Chrome,
    form: FilterForm,
    count: usize,
    at_least: bool,
    filter_query: String,
    can_operate: bool,
}

/// Counts the dead letters `filter` matches, page by page, up to [`COUNT_LIMIT`]: (count,
/// whether there may be more).
async fn count(st: &Shared, filter: &Filter) -> Result<(usize, bool), params::ApiError> {
    let mut n = 0;
    let mut cursor: Option<String> = None;
    for _ in 0..COUNT_PAGES {
        let page = st
            .admin
            .store
            .list_dead(filter, params::MAX_LIMIT, cursor.as_deref())
            .await?;
        n += page.items.len();
        match page.next_cursor {
            None => return Ok((n, false)),
            Some(_) if n >= COUNT_LIMIT => return Ok((n, true)),
            Some(c) => cursor = Some(c),
        }
    }
    Ok((n, true))
}

pub async fn confirm(State(st): State<Shared>, user: Signed, RawQuery(q): RawQuery) -> Response {
    let (form, parsed) = parse(&st, q.as_deref());
    let counted = async {
        let q = parsed?;
        count(&st, &q.filter).await
    }
    .await;
    let (count, at_least) = match counted {
        Ok(c) => c,
        Err(e) => return page::api_error(e),
    };
    page::render(
        StatusCode::OK,
        &Confirm {
            chrome: Chrome::new("dead-letters", "Replay dead letters", &user),
            filter_query: form.query(""),
            form,
            count,
            at_least,
            can_operate: user.may(Role::Operator),
        },
    )
}
