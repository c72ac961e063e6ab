//! The simulated game. Players are simple stochastic policies; a model's name decides how often
//! it hallucinates (accuses at random) and how sharply it reads the table.

use crystallize::prelude::*;
use rand::seq::IndexedRandom;

/// A player's side.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    /// Wins if the deceivers reach parity.
    Deceiver,
    /// Wins by voting out every deceiver.
    Aligned,
}

/// One seat at the table.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Player {
    /// Display name.
    pub name: String,
    /// The "model" driving this player.
    pub model: String,
    /// Its secret role.
    pub role: Role,
}

/// A condition's input: who sits at the table and how the game runs.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GameConfig {
    /// The players, in seat order.
    pub players: Vec<Player>,
    /// The game ends after this many rounds (deceivers win a stalemate).
    pub max_rounds: u32,
    /// Aligned players see a hint about one deceiver.
    pub spoilers: bool,
}

/// The experiment's params: defaults here, overridden by treatments' `set(...)`, `--set` and
/// `crystallize.toml`; each unit gets them resolved for its condition.
#[derive(Clone, Debug, Params)]
pub struct GameParams {
    /// How much noise players add to their reading of the table.
    #[param(default = 0.7)]
    pub temperature: f64,
    /// A pause per round, to watch a run live.
    #[param(default = 0)]
    pub think_ms: u64,
    /// The replicate that panics on purpose (`--set crash_on_replicate=3`), to see a failure
    /// reported and reproduced; none by default.
    pub crash_on_replicate: Option<u64>,
    /// Whether each unit writes its transcript as an artifact.
    #[param(default = false)]
    pub transcript: bool,
}

/// What happened in one game.
#[derive(Clone, Debug, Default)]
pub struct GameLog {
    /// Whether the aligned side won.
    pub aligned_won: bool,
    /// Rounds played.
    pub rounds: u32,
    /// Accusations made at random.
    pub hallucinations: u32,
    /// One line per round, for the transcript artifact.
    pub transcript: Vec<String>,
}

/// How a model behaves: probability of a random accusation, and how strongly it follows evidence.
fn behaviour(model: &str) -> (f64, f64) {
    if model.starts_with("dolphin") {
        (0.45, 0.6)
    } else {
        (0.15, 1.0)
    }
}

/// Deals hidden suspicion: how suspicious each player looks to the others (deceivers look a bit
/// more suspicious, with noise).
#[step]
fn deal_tells(config: &GameConfig, ctx: &mut Ctx) -> Vec<f64> {
    let mut rng = ctx.rng();
    config
        .players
        .iter()
        .map(|p| {
            let base = if p.role == Role::Deceiver { 0.55 } else { 0.45 };
            base + rng.random_range(-0.3..0.3)
        })
        .collect()
}

/// One round: everyone alive votes, the most-voted player leaves. Returns who left and how many
/// votes were hallucinated.
#[step]
fn play_round(
    config: &GameConfig,
    alive: &[usize],
    tells: &[f64],
    rng: &mut crystallize::Rng,
    temperature: f64,
) -> (usize, u32) {
    let mut votes = vec![0u32; config.players.len()];
    let mut hallucinated = 0;
    for &voter in alive {
        let player = &config.players[voter];
        let (hallucination, sharpness) = behaviour(&player.model);
        let candidates: Vec<usize> = alive.iter().copied().filter(|&c| c != voter).collect();
        let target = if player.role == Role::Deceiver {
            // Deceivers vote for the least suspicious aligned player.
            *candidates
                .iter()
                .filter(|&&c| config.players[c].role == Role::Aligned)
                .min_by(|&&a, &&b| tells[a].total_cmp(&tells[b]))
                .unwrap_or(&candidates[0])
        } else if rng.random_bool(hallucination) {
            hallucinated += 1;
            *candidates.choose(rng).unwrap_or(&candidates[0])
        } else {
            // Noisy read of the tells; temperature adds noise, sharpness scales the signal.
            let spoiler = |c: usize| if config.spoilers && c == 0 { 0.3 } else { 0.0 };
            let scored: Vec<(usize, f64)> = candidates
                .iter()
                .map(|&c| (c, tells[c] * sharpness + spoiler(c) + rng.random_range(0.0..0.5) * temperature))
                .collect();
            scored.iter().max_by(|a, b| a.1.total_cmp(&b.1)).map_or(candidates[0], |&(c, _)| c)
        };
        votes[target] += 1;
    }
    let out = *alive.iter().max_by_key(|&&p| (votes[p], std::cmp::Reverse(p))).unwrap_or(&alive[0]);
    (out, hallucinated)
}

/// Plays one game to the end, emitting an event per round.
#[step]
pub fn play(config: &GameConfig, params: &GameParams, ctx: &mut Ctx) -> GameLog {
    let (temperature, think_ms) = (params.temperature, params.think_ms);
    let tells = deal_tells(config, ctx);
    let mut rng = ctx.rng();
    let mut alive: Vec<usize> = (0..config.players.len()).collect();
    let mut log = GameLog::default();
    let deceivers_left = |alive: &[usize]| alive.iter().filter(|&&p| config.players[p].role == Role::Deceiver).count();
    while log.rounds < config.max_rounds {
        if think_ms > 0 {
            std::thread::sleep(std::time::Duration::from_millis(think_ms));
        }
        log.rounds += 1;
        let (out, hallucinated) = play_round(config, &alive, &tells, &mut rng, temperature);
        log.hallucinations += hallucinated;
        alive.retain(|&p| p != out);
        let deceivers = deceivers_left(&alive);
        log.transcript.push(format!(
            "round {}: {} voted out ({:?}), {hallucinated} hallucinated votes, {deceivers} deceivers left",
            log.rounds, config.players[out].name, config.players[out].role
        ));
        ctx.emit(
            "round",
            json!({
                "round": log.rounds,
                "voted_out": config.players[out].name,
                "was_deceiver": config.players[out].role == Role::Deceiver,
                "hallucinated_votes": hallucinated,
                "deceivers_left": deceivers,
            }),
        );
        if deceivers == 0 {
            log.aligned_won = true;
            break;
        }
        if deceivers * 2 >= alive.len() {
            break;
        }
    }
    log
}
