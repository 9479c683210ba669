//! `hookgate events list|show`: events, and for one event its deliveries and its routing
//! (which endpoints it matched, and why not each other one: the stage and filter clause).

use std::io::Write;

use super::operator::{
    Client, Conn, Events, OperatorError, block_on, filter_pairs, more, opt, print, query, table,
};
use crate::api::views::{Event, Page};

fn deliveries_cell(event: &Event) -> String {
    if event.deliveries.is_empty() {
        return "-".into();
    }
    event
        .deliveries
        .iter()
        .map(|d| format!("{}:{}", d.endpoint_id, d.status))
        .collect::<Vec<_>>()
        .join(",")
}

pub fn events(conn: Conn, cmd: Events) -> Result<(), OperatorError> {
    let client = Client::new(conn.clone())?;
    match cmd {
        Events::List {
            filters,
            endpoint,
            status,
            limit,
            cursor,
        } => {
            let mut pairs = filter_pairs(&filters);
            pairs.extend([
                ("endpoint", endpoint),
                ("status", status),
                ("limit", limit.map(|l| l.to_string())),
                ("cursor", cursor),
            ]);
            let answer = block_on(client.call::<Page<Event>>(
                reqwest::Method::GET,
                &format!("/events{}", query(&pairs)),
                None,
            ))?;
            print(&conn, &answer, |out, page| {
                let rows = page.data.iter().map(|e| {
                    vec![
                        e.event_id.clone(),
                        e.source.clone(),
                        opt(&e.event_type),
                        e.received_at.clone(),
                        deliveries_cell(e),
                    ]
                });
                table(
                    out,
                    &["EVENT", "SOURCE", "TYPE", "RECEIVED", "DELIVERIES"],
                    rows,
                )?;
                more(out, page)
            })
        }
        Events::Show { id } => {
            let answer = block_on(client.call::<Event>(
                reqwest::Method::GET,
                &format!("/events/{id}"),
                None,
            ))?;
            print(&conn, &answer, |out, e| {
                writeln!(
                    out,
                    "event     {}\nsource    {}\ntype      {}\nreceived  {}\n",
                    e.event_id,
                    e.source,
                    opt(&e.event_type),
                    e.received_at
                )?;
                let rows = e.deliveries.iter().map(|d| {
                    vec![
                        d.delivery_id.clone(),
                        d.endpoint_id.clone(),
                        d.status.clone(),
                        d.attempts.to_string(),
                        opt(&d.next_attempt_at),
                        opt(&d.last_status_code),
                        opt(&d.last_error),
                    ]
                });
                table(
                    out,
                    &[
                        "DELIVERY",
                        "ENDPOINT",
                        "STATUS",
                        "ATTEMPTS",
                        "NEXT ATTEMPT",
                        "LAST CODE",
                        "LAST ERROR",
                    ],
                    rows,
                )?;
                routing(out, e)
            })
        }
    }
}

/// The endpoints the event did not go to, and why: the first thing to look at when a webhook
/// "went missing".
fn routing(out: &mut impl Write, e: &Event) -> std::io::Result<()> {
    let missed: Vec<_> = e.routing.iter().flatten().filter(|r| !r.matched).collect();
    if missed.is_empty() {
        return Ok(());
    }
    writeln!(out, "\nnot sent to")?;
    let rows = missed.into_iter().map(|r| {
        vec![
            r.endpoint.clone(),
            opt(&r.stage),
            opt(&r.clause),
            r.reason.clone(),
        ]
    });
    table(out, &["ENDPOINT", "STAGE", "CLAUSE", "WHY"], rows)
}
