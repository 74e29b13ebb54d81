//! The `inferd` binary: parse the command line and run the subcommand (see `inferd::app`).

use clap::Parser;
use inferd::{
    app::commands,
    cli::{Cli, Command, IndexCommand, ModelsCommand},
};

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Serve(config) => commands::serve(*config),
        Command::Index(IndexCommand::Build(config)) => commands::build_index(*config),
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
