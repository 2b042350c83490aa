//! Fakes of the SaaS destinations' APIs (issue 12), each implementing [`crate::vendor::VendorFake`].

pub mod serve;

pub mod customerio;
pub mod google_ads;
pub mod meta;
pub mod salesforce;
