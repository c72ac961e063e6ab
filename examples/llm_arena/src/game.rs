//! The quiz duel. Each round both players get the same multiple-choice arithmetic question; a
//! reply counts when its first standalone letter A–D names the right option. After the last
//! round the higher score wins (a tie is nobody's win).
//!
//! Questions are built from the unit's generator, so every condition of a replicate asks the same
//! questions. Each request is [`ask`], a `#[step(limit = "ollama", cache(skip(client)))] async
//! fn`: inside a unit it holds a permit of the run's `ollama` limit while it waits for the
//! server, the unit's observers see it start and end, and its reply is kept in the store's step
//! cache, so that a run of the same games (after a change to how they are scored, say) asks the
//! server nothing. Reading a reply ([`judge`]) and scoring a game (`score` in `main.rs`) are not
//! cached: changing them re-scores the stored replies.

use std::time::Duration;

use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use crate::ollama::{ChatMessage, ChatOptions, ChatRequest, OllamaClient, OllamaError};

/// A condition's input: who plays and how long.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Duel {
    /// Player one's model (`win` is whether this one won).
    pub player_a: String,
    /// Player two's model.
    pub player_b: String,
    /// Questions per game.
    pub rounds: u32,
}

/// How requests are sent: sampling options and retries. Part of the cache key of every request.
#[derive(Clone, Debug, Serialize)]
pub struct Sampling {
    /// The Ollama seed of every request of the game (with the prompt, it fixes each reply).
    pub seed: u64,
    /// The sampling temperature.
    pub temperature: f64,
    /// How many times a retryable failure is retried before the game fails.
    pub retries: u32,
}

/// One multiple-choice question.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Question {
    /// The round it is asked in, from 1.
    pub number: u32,
    /// `What is 37 + 48?`
    pub text: String,
    /// The values of options A to D.
    pub options: [i64; 4],
    /// The index (0 = A) of the right option.
    pub correct: usize,
}

/// Builds question `number` from `rng`: a sum, difference or product of two small numbers, and
/// three distinct wrong options near the answer, shuffled with it.
pub fn make_question(rng: &mut impl rand::Rng, number: u32) -> Question {
    let (a, b) = (rng.random_range(2..100i64), rng.random_range(2..100i64));
    let (op, answer) = match rng.random_range(0..3) {
        0 => ("+", a + b),
        1 => ("-", a - b),
        _ => ("*", a * b),
    };
    let mut options = vec![answer];
    while options.len() < 4 {
        let offset = rng.random_range(1..=10i64) * if rng.random_bool(0.5) { 1 } else { -1 };
        if !options.contains(&(answer + offset)) {
            options.push(answer + offset);
        }
    }
    options.shuffle(rng);
    let correct = options.iter().position(|&v| v == answer).unwrap_or(0);
    Question {
        number,
        text: format!("What is {a} {op} {b}?"),
        options: [options[0], options[1], options[2], options[3]],
        correct,
    }
}

/// The chat that asks `question`.
pub fn prompt(question: &Question) -> Vec<ChatMessage> {
    let mut text = format!("Question {}: {}\n", question.number, question.text);
    for (letter, value) in ['A', 'B', 'C', 'D'].iter().zip(question.options) {
        text.push_str(&format!("{letter}) {value}\n"));
    }
    text.push_str("Answer with the letter of the correct option only.");
    vec![
        ChatMessage::system("You are a contestant in a quiz. Reply with a single letter: A, B, C or D."),
        ChatMessage::user(text),
    ]
}

/// The option a reply names: its first word that is a single letter A–D (so `B`, `B) 85`, `The
/// answer is B.` and `**C**` all parse), or `None`. A reply starting with the article "A" is read
/// as option A; real models asked for a letter rarely write one.
pub fn parse_answer(reply: &str) -> Option<usize> {
    reply.split(|c: char| !c.is_alphanumeric()).find_map(|word| match word {
        "A" => Some(0),
        "B" => Some(1),
        "C" => Some(2),
        "D" => Some(3),
        _ => None,
    })
}

/// Why a game could not be played.
#[derive(Debug, thiserror::Error)]
#[error("round {round}, player {player} ({model}): {source} (after {attempts} attempt(s))")]
pub struct GameError {
    /// The round, from 1.
    pub round: u32,
    /// `A` or `B`.
    pub player: char,
    /// The player's model.
    pub model: String,
    /// How many requests were sent for this answer.
    pub attempts: u32,
    /// The last failure.
    #[source]
    pub source: OllamaError,
}

/// What a model replied to one question, as the step cache stores it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Reply {
    /// The raw reply.
    pub text: String,
    /// HTTP calls made for it (1 unless retried).
    pub calls: u32,
}

/// A player's answer to one question: the reply, read.
#[derive(Clone, Debug, Serialize)]
pub struct Answer {
    /// The raw reply.
    pub reply: String,
    /// The option it names, if any.
    pub choice: Option<usize>,
    /// Whether that is the right option.
    pub correct: bool,
    /// HTTP calls made for it (1 unless retried).
    pub calls: u32,
}

/// Asks `model` the question, retrying retryable failures up to `sampling.retries` times with a
/// short growing pause (a busy server gets a moment). `Err` holds the attempts made. The permit
/// of the `ollama` limit is held across the retries: a retry is the same request, still in flight.
///
/// Cached: the key is the model, the question, the sampling (seed, temperature, retries), the
/// unit and the call's position in it; the client (where the server is) is not part of it. A
/// reply is stored only when the call succeeded.
#[crystallize::step(limit = "ollama", cache(skip(client)))]
pub async fn ask(
    client: &OllamaClient,
    model: &str,
    question: &Question,
    sampling: &Sampling,
) -> Result<Reply, (OllamaError, u32)> {
    let options = ChatOptions { seed: Some(sampling.seed), temperature: Some(sampling.temperature) };
    let request = ChatRequest::new(model, prompt(question), options);
    let mut calls = 0;
    loop {
        calls += 1;
        match client.chat(&request).await {
            Ok(response) => return Ok(Reply { text: response.message.content, calls }),
            Err(error) if error.is_retryable() && calls <= sampling.retries => {
                tokio::time::sleep(Duration::from_millis(50 * u64::from(calls))).await;
            }
            Err(error) => return Err((error, calls)),
        }
    }
}

/// Reads a reply: the option it names and whether that is the right one.
pub fn judge(question: &Question, reply: Reply) -> Answer {
    let choice = parse_answer(&reply.text);
    Answer { correct: choice == Some(question.correct), reply: reply.text, choice, calls: reply.calls }
}

/// One round: both players answer the question, one after the other (so a game keeps at most one
/// request in flight, and `--jobs` bounds the server's load).
#[derive(Clone, Debug, Serialize)]
pub struct Round {
    /// The question asked.
    pub question: Question,
    /// Player one's answer.
    pub a: Answer,
    /// Player two's answer.
    pub b: Answer,
}

/// Plays one round.
pub async fn play_round(
    client: &OllamaClient,
    duel: &Duel,
    question: Question,
    sampling: &Sampling,
) -> Result<Round, GameError> {
    let fail = |player: char, model: &str, (source, attempts): (OllamaError, u32)| GameError {
        round: question.number,
        player,
        model: model.to_owned(),
        attempts,
        source,
    };
    let a = ask(client, &duel.player_a, &question, sampling).await.map_err(|e| fail('A', &duel.player_a, e))?;
    let b = ask(client, &duel.player_b, &question, sampling).await.map_err(|e| fail('B', &duel.player_b, e))?;
    Ok(Round { a: judge(&question, a), b: judge(&question, b), question })
}

/// Plays `questions` in order, calling `on_round` after each round (to show the game live).
pub async fn play(
    client: &OllamaClient,
    duel: &Duel,
    questions: Vec<Question>,
    sampling: &Sampling,
    mut on_round: impl FnMut(&Round),
) -> Result<Vec<Round>, GameError> {
    let mut rounds = Vec::with_capacity(questions.len());
    for question in questions {
        let round = play_round(client, duel, question, sampling).await?;
        on_round(&round);
        rounds.push(round);
    }
    Ok(rounds)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn answers_parse_as_models_write_them() {
        assert_eq!(parse_answer("B"), Some(1));
        assert_eq!(parse_answer("C) 85"), Some(2));
        assert_eq!(parse_answer("The answer is D."), Some(3));
        assert_eq!(parse_answer("**A**"), Some(0));
        assert_eq!(parse_answer("I am not sure."), None);
        assert_eq!(parse_answer(""), None);
    }

    #[test]
    fn questions_have_one_right_option_and_repeat_with_the_seed() {
        let questions = |seed| {
            let mut rng = crystallize::Rng::seed_from_u64(seed);
            (1..=50).map(|n| make_question(&mut rng, n)).collect::<Vec<_>>()
        };
        assert_eq!(questions(3), questions(3));
        for q in questions(3) {
            let mut distinct = q.options.to_vec();
            distinct.sort();
            distinct.dedup();
            assert_eq!(distinct.len(), 4, "{q:?}");
            assert!(prompt(&q)[1].content.contains(&format!(
                "{}) {}",
                ['A', 'B', 'C', 'D'][q.correct],
                q.options[q.correct]
            )));
        }
    }
}
