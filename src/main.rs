//! The `inferd` binary: parse the command line and run the subcommand (see `inferd::app`).

use clap::Parser;
use inferd::{
    app::{batch_cli, commands, drift},
    cli::{Cli, Command, DriftCommand, IndexCommand, ModelsCommand},
};

#[global_allocator]
static ALLOCATOR: inferd::allocator::Allocator = inferd::allocator::Allocator;

/// Tunes the allocator before Rust's runtime allocates (see `inferd::allocator`).
#[cfg(target_os = "linux")]
#[used]
#[link_section = ".init_array"]
static TUNE_ALLOCATOR: extern "C" fn() = inferd::allocator::tune_before_main;

fn main() -> anyhow::Result<()> {
    #[cfg(not(target_os = "linux"))]
    inferd::allocator::tune();
    match Cli::parse().command {
        Command::Serve(config) => commands::serve(*config),
        Command::Index(IndexCommand::Build(config)) => commands::build_index(*config),
        Command::Batch(command) => batch_cli::batch(command),
        Command::Embed(config) => batch_cli::embed(*config),
        Command::Drift(DriftCommand::Profile(config)) => drift::profile(*config),
        Command::Models(ModelsCommand::Verify {
            manifest_dir,
            require_local,
        }) => {
            if !commands::verify_models(&manifest_dir, require_local)? {
                std::process::exit(1);
            }
            Ok(())
        }
    }
}
