//! Test helpers shared by the integration tests.
#![allow(dead_code)]

pub mod api_server;
pub mod chart;
pub mod feed;
pub mod real_cluster;
pub mod scenario;
