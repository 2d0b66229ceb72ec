//! Confirmation before commands that delete many things at once.
//!
//! On a terminal the command asks; anywhere else (a script, CI, a pipe) nobody can answer, so
//! the command refuses unless `--force` says the deletion is meant. Refusing is a usage error
//! (exit 2), decided before the store is opened, so a refused command changes nothing.

use std::io::{BufRead, IsTerminal, Write};

use clap::Args;

use crate::Failure;

/// `--force` and the spellings wrangler uses for it (`--force`/`-f` on `kv bulk delete`,
/// `--skip-confirmation`/`-y` on `kv namespace delete`), all accepted on every destructive
/// command so that a habit from either works.
#[derive(Debug, Clone, Copy, Args)]
pub struct Force {
    /// Delete without asking; required when standard input is not a terminal.
    #[arg(
        short = 'f',
        long = "force",
        visible_alias = "skip-confirmation",
        visible_short_alias = 'y'
    )]
    pub force: bool,
}

impl Force {
    /// Refuses when there is neither `--force` nor a terminal to ask on.
    pub fn check(self, command: &str) -> Result<(), Failure> {
        if self.force || std::io::stdin().is_terminal() {
            return Ok(());
        }
        Err(Failure::Usage(format!(
            "`{command}` deletes data and standard input is not a terminal to confirm on; \
             pass --force (or -f, -y, --skip-confirmation) to delete without asking"
        )))
    }

    /// `true` when the deletion may go ahead: with `--force`, or when the person at the
    /// terminal answers yes to `question`. Anything but `y`/`yes` (including end of input) is
    /// no.
    pub fn confirm(self, command: &str, question: &str) -> Result<bool, Failure> {
        if self.force {
            return Ok(true);
        }
        self.check(command)?;
        let mut stderr = std::io::stderr().lock();
        write!(stderr, "{question} [y/N] ")?;
        stderr.flush()?;
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        let yes = matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes");
        if !yes {
            // Declining is the person's choice, not a failure: wrangler exits 0 here too.
            writeln!(stderr, "kv: nothing deleted")?;
        }
        Ok(yes)
    }
}
