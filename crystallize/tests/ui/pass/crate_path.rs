//! `crate = path` on every attribute and derive: a crate that renames crystallize (here with
//! `extern crate ... as renamed`, as a re-export or a `package =` rename in Cargo.toml would)
//! points the generated code at the name it uses. Also one path through a module re-export and
//! one written as a string literal. It must compile without warnings and register what it says.
//!
//! trybuild still passes `--extern crystallize`, so this program cannot prove that no generated
//! path names `::crystallize`; the macros' snapshot test `crate_path` checks that on the tokens.

#![deny(warnings)]

pub extern crate crystallize as renamed;

use renamed::__private::internals::Registry;
use renamed::prelude::*;

mod reexport {
    pub use renamed as cr;
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Board {
    pub size: u32,
}

#[datasource(crate = renamed)]
fn small() -> Board {
    Board { size: 3 }
}

#[datasource(crate = crate::reexport::cr)]
fn large(ctx: &Ctx) -> Board {
    let _ = ctx;
    Board { size: 9 }
}

#[derive(Clone, Debug, Params)]
#[crystallize(crate = renamed)]
pub struct BoardParams {
    #[param(default = 2)]
    pub moves: u32,
}

#[derive(Metrics)]
#[crystallize(crate = "renamed")]
pub struct BoardMetrics {
    pub filled: u32,
    pub win: bool,
}

#[step(crate = renamed)]
fn fill(board: &Board, moves: u32) -> u32 {
    board.size.min(moves)
}

#[step(limit = "cpu", crate = renamed)]
fn judge(filled: u32) -> bool {
    filled % 2 == 0
}

#[experiment(crate = renamed, datasource = small, replicates = 2, expect(big.filled > baseline.filled))]
fn board(board: Board, params: &BoardParams, ctx: &mut Ctx) -> BoardMetrics {
    let filled = fill(&board, params.moves);
    ctx.emit("filled", json!({ "filled": filled }));
    BoardMetrics { filled, win: judge(filled) }
}

#[treatment(board, crate = renamed, datasource = large, set(moves = 5), expect(filled > baseline.filled))]
fn big() {}

#[treatment(board, crate = crate::reexport::cr)]
fn shrunk(board: &mut Board) {
    board.size = 1;
}

#[experiment(crate = renamed, params(rounds: u32 = 1), smoke_test = false)]
fn sugar(params: &SugarParams, ctx: &mut Ctx) {
    ctx.record("rounds", params.rounds);
}

fn main() {
    let registry = Registry::collect().unwrap_or_else(|error| panic!("inconsistent registry: {error}"));
    let board = registry.experiment(Some("board")).unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(board.entry.datasource.map(|info| info.name), Some("small"));
    assert_eq!(board.entry.metrics, Some(&["filled", "win"][..]));
    assert_eq!(board.entry.params.len(), 1);
    let mut conditions = board.condition_names();
    conditions.sort();
    assert_eq!(conditions, ["baseline", "big", "shrunk"]);
    let big = board.treatment("big").unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(big.datasource.as_ref().map(|source| source.info.name), Some("large"));
    assert_eq!(big.hypotheses.len(), 1);
    let sugar = registry.experiment(Some("sugar")).unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(sugar.entry.params.len(), 1);
    assert_eq!(BoardParams::default().moves, 2);
    let mut steps: Vec<(&str, Option<&str>)> = renamed::__private::inventory::iter::<renamed::__private::StepEntry>
        .into_iter()
        .map(|step| (step.0.name, step.0.limit))
        .collect();
    steps.sort();
    assert_eq!(steps, [("fill", None), ("judge", Some("cpu"))]);
}
