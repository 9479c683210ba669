//! Integration tests: one binary, real HTTP on loopback, a real redb file, and the real
//! `hookgate` binary where a crash matters.

mod harness;

mod access;
mod admin;
mod breaker;
mod cli;
mod cluster;
mod cluster_rules;
mod console;
mod console_a11y;
mod console_cross_site;
mod console_endpoint;
mod console_live;
mod console_overview;
mod console_rules;
mod console_search;
mod console_user;
mod crash;
mod delivery;
mod filters;
mod fuzz_corpus;
mod handshakes;
mod health_keys;
mod ingress;
mod limits;
mod listen;
mod observability;
mod ops_events;
mod ordering;
mod outage;
mod powerloss;
mod pull;
mod pull_stream;
mod reliability;
mod store;
mod transform_pool;
mod transforms;
mod webdriver;
