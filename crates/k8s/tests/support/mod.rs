//! Test helpers shared by the integration tests.
#![allow(dead_code)]

pub mod api_server;
pub mod chart;
