//! lenet: LeNet-5 on MNIST from scratch, and a careful study of how optimizers, dropout and
//! batch normalization change its training.
//!
//! Modules follow the data, after the utilities ([`rng`], [`tensor`], and [`parallel`], the
//! engine's parallel regions): [`data`] (IDX files, fetching, splits) feeds [`nn`] (layers with
//! forward and backward side by side, and the LeNet-5 builders), whose parameters [`optim`]
//! updates, driven by [`train`] (the loop, metrics and checkpoints). [`stats`] is the pure
//! maths that [`study`] (plans, runs, resume, shards, summaries) decides with; [`report`]
//! writes figures and documents from result files, and [`explore`] serves trained networks
//! to a browser. [`cli`] is the command line. Each module uses only those before it.

pub mod alloc;
pub mod atomic_file;
pub mod doc;
pub mod format;
pub mod rng;
pub mod simd;
pub mod tensor;

pub mod parallel;
pub mod process;

pub mod data;
pub mod nn;
pub mod optim;
pub mod train;

pub mod stats;
pub mod study;

pub mod report;

pub mod explore;

pub mod cli;
