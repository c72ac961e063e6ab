//! Snapshots of each macro's expansion, pretty-printed. A change to what a macro generates fails
//! these tests until the new snapshot is reviewed (`INSTA_UPDATE=always` or `cargo insta review`).
//! The inputs are the shapes a user writes; the compile-fail UI tests in `crystallize/tests/ui`
//! cover the shapes a user gets wrong.

use proc_macro2::TokenStream;
use quote::quote;

/// Pretty-prints an expansion, failing if it is not a valid Rust file or if it carries an error.
fn pretty(tokens: TokenStream) -> String {
    let text = tokens.to_string();
    assert!(!text.contains("compile_error"), "the expansion reports an error:\n{text}");
    let file: syn::File = match syn::parse2(tokens) {
        Ok(file) => file,
        Err(error) => panic!("the expansion is not a Rust file ({error}):\n{text}"),
    };
    prettyplease::unparse(&file)
}

mod experiment {
    use super::*;
    use crate::experiment::expand;

    #[test]
    fn with_datasource_typed_and_untyped_params_and_hypotheses() {
        insta::assert_snapshot!(pretty(expand(
            quote!(
                datasource = llama_table,
                replicates = 10,
                seed = 42,
                params(temperature = 0.7, think_ms: u64 = 0, offset: i32 = -3, label = "x", spoilers = false),
                hypotheses = ["dolphin.win < baseline.win", "dolphin.rounds > baseline.rounds"]
            ),
            quote!(
                /// One game.
                pub fn social_deception(config: GameConfig, ctx: &mut Ctx) {
                    ctx.record("win", config.spoilers);
                }
            ),
        )));
    }

    #[test]
    fn typed_params_declared_metrics_and_expect() {
        insta::assert_snapshot!(pretty(expand(
            quote!(datasource = llama_table, expect(dolphin.win < baseline.win, dolphin.rounds >= baseline.rounds - 1)),
            quote!(
                fn social_deception(config: GameConfig, params: &GameParams, ctx: &mut Ctx) -> GameMetrics {
                    play(&config, params, ctx)
                }
            ),
        )));
    }

    #[test]
    fn typed_params_without_datasource_returning_a_result_of_metrics() {
        insta::assert_snapshot!(pretty(expand(
            quote!(),
            quote!(
                fn coin(params: &CoinParams) -> Result<CoinMetrics, String> {
                    Ok(CoinMetrics { heads: params.bias > 0.5 })
                }
            ),
        )));
    }

    #[test]
    fn input_by_reference() {
        insta::assert_snapshot!(pretty(expand(
            quote!(datasource = llama_table),
            quote!(
                fn by_ref(config: &GameConfig, ctx: &mut Ctx) {
                    ctx.record("players", config.players.len());
                }
            ),
        )));
    }

    #[test]
    fn without_datasource_takes_only_ctx() {
        insta::assert_snapshot!(pretty(expand(
            quote!(replicates = 3),
            quote!(
                fn coin(ctx: &mut Ctx) {
                    let heads = ctx.rng().random_bool(0.5);
                    ctx.record("heads", heads);
                }
            ),
        )));
    }

    #[test]
    fn without_datasource_or_ctx() {
        insta::assert_snapshot!(pretty(expand(
            quote!(),
            quote!(
                fn nothing() {}
            )
        )));
    }

    #[test]
    fn async_with_typed_params_declared_metrics_and_run_defaults() {
        insta::assert_snapshot!(pretty(expand(
            quote!(
                datasource = llama_table,
                jobs = 16,
                timeout = "2min",
                retries = 3,
                limits(ollama = 2, "judge-1" = 1)
            ),
            quote!(
                async fn arena(duel: Duel, params: &ArenaParams, ctx: &mut Ctx) -> Result<ArenaMetrics, String> {
                    play(&duel, params, ctx).await
                }
            ),
        )));
    }

    #[test]
    fn async_without_datasource_or_ctx() {
        insta::assert_snapshot!(pretty(expand(
            quote!(),
            quote!(
                async fn idle() {}
            )
        )));
    }

    #[test]
    fn input_without_ctx_returning_result() {
        insta::assert_snapshot!(pretty(expand(
            quote!(datasource = load, seed = 7),
            quote!(
                fn fallible(config: GameConfig) -> Result<(), String> {
                    if config.players.is_empty() {
                        return Err("no players".into());
                    }
                    Ok(())
                }
            ),
        )));
    }
}

mod datasource {
    use super::*;
    use crate::datasource::expand;

    #[test]
    fn without_ctx() {
        insta::assert_snapshot!(pretty(expand(
            quote!(),
            quote!(
                /// The baseline table.
                pub fn llama_table() -> GameConfig {
                    seat_players(LLAMA)
                }
            ),
        )));
    }

    #[test]
    fn with_ctx() {
        insta::assert_snapshot!(pretty(expand(
            quote!(),
            quote!(
                fn random_table(ctx: &Ctx) -> Vec<u32> {
                    let mut rng = ctx.rng();
                    (0..4).map(|_| rng.random()).collect()
                }
            ),
        )));
    }
}

mod step {
    use super::*;
    use crate::step::expand;

    #[test]
    fn on_a_free_function() {
        insta::assert_snapshot!(pretty(expand(
            quote!(),
            quote!(
                /// Plays one game.
                #[inline]
                pub(crate) fn play(config: &GameConfig, ctx: &mut Ctx) -> bool {
                    ctx.rng().random_bool(0.5)
                }
            ),
        )));
    }

    #[test]
    fn sync_with_retries() {
        insta::assert_snapshot!(pretty(expand(
            quote!(retries = 3),
            quote!(
                fn score(answer: String, scale: &u64, ctx: &mut Ctx) -> Result<u64, Failure> {
                    let drawn = ctx.rng().random_range(0..10);
                    Ok(answer.len() as u64 * scale + drawn)
                }
            ),
        )));
    }

    #[test]
    fn async_with_a_timeout_retries_and_a_limit() {
        insta::assert_snapshot!(pretty(expand(
            quote!(limit = "ollama", timeout = "30s", retries = 2),
            quote!(
                pub async fn ask(client: &Client, question: String, ctx: &mut Ctx) -> Result<String, Failure> {
                    client.chat(&question, ctx.seed()).await
                }
            ),
        )));
    }

    #[test]
    fn cached_with_a_timeout_and_retries() {
        insta::assert_snapshot!(pretty(expand(
            quote!(limit = "ollama", cache(skip(client)), timeout = "30s", retries = 2),
            quote!(
                async fn ask(client: &Client, question: String) -> Result<String, Failure> {
                    client.chat(&question).await
                }
            ),
        )));
    }

    #[test]
    fn async_with_a_limit() {
        insta::assert_snapshot!(pretty(expand(
            quote!(limit = "ollama"),
            quote!(
                pub async fn ask(client: &Client, question: &str) -> Result<String, Error> {
                    client.chat(question).await
                }
            ),
        )));
    }

    #[test]
    fn sync_with_a_limit() {
        insta::assert_snapshot!(pretty(expand(
            quote!(limit = "gpu-0"),
            quote!(
                fn render(frame: u32) -> u32 {
                    frame * 2
                }
            ),
        )));
    }

    #[test]
    fn async_method() {
        let method = expand(
            quote!(),
            quote!(
                async fn score(&self, bonus: &u32) -> u32 {
                    self.points + *bonus
                }
            ),
        );
        insta::assert_snapshot!(pretty(quote!(impl Player { #method })));
    }

    #[test]
    fn cached() {
        insta::assert_snapshot!(pretty(expand(
            quote!(cache),
            quote!(
                fn judge(question: &Question, reply: &str) -> Verdict {
                    if reply.is_empty() {
                        return Verdict::Blank;
                    }
                    Verdict::of(question, reply)
                }
            ),
        )));
    }

    #[test]
    fn cached_async_with_a_limit_a_skipped_argument_and_a_result() {
        insta::assert_snapshot!(pretty(expand(
            quote!(limit = "ollama", cache(skip(client))),
            quote!(
                pub async fn ask(client: &Client, model: &str, question: &Question) -> Result<Reply, Error> {
                    client.chat(model, question).await
                }
            ),
        )));
    }

    #[test]
    fn cached_shared_with_a_version() {
        insta::assert_snapshot!(pretty(expand(
            quote!(cache(shared, version = 2)),
            quote!(
                fn parse(text: &str) -> Result<Vec<u32>, ParseIntError> {
                    text.split(',').map(str::parse).collect()
                }
            ),
        )));
    }

    #[test]
    fn on_a_method() {
        // A method is not a file-level item on its own; wrap the expansion in an `impl` to print it.
        let method = expand(
            quote!(),
            quote!(
                fn score(&self) -> u32 {
                    self.points * 2
                }
            ),
        );
        insta::assert_snapshot!(pretty(quote!(impl Player { #method })));
    }
}

mod treatment {
    use super::*;
    use crate::treatment::expand;

    #[test]
    fn datasource_only() {
        insta::assert_snapshot!(pretty(expand(
            quote!(social_deception, datasource = dolphin_table),
            quote!(
                fn dolphin() {}
            ),
        )));
    }

    #[test]
    fn mutation_only() {
        insta::assert_snapshot!(pretty(expand(
            quote!(social_deception),
            quote!(
                fn spoilers(config: &mut GameConfig) {
                    config.spoilers = true;
                }
            ),
        )));
    }

    #[test]
    fn mutation_with_ctx() {
        insta::assert_snapshot!(pretty(expand(
            quote!(social_deception),
            quote!(
                fn shuffled(config: &mut GameConfig, ctx: &Ctx) {
                    config.max_rounds = ctx.rng().random_range(4..9);
                }
            ),
        )));
    }

    #[test]
    fn set_only() {
        insta::assert_snapshot!(pretty(expand(
            quote!(social_deception, set(temperature = 1.2, think_ms = 50, label = "hot", spoilers = true)),
            quote!(
                fn hot() {}
            ),
        )));
    }

    #[test]
    fn set_of_an_optional_param_and_expect_with_a_bare_left_side() {
        insta::assert_snapshot!(pretty(expand(
            quote!(social_deception, set(crash_on_replicate = 3), expect(win > baseline.win)),
            quote!(
                fn crashing() {}
            ),
        )));
    }

    #[test]
    fn datasource_set_and_mutation() {
        insta::assert_snapshot!(pretty(expand(
            quote!(crate::games::social_deception, datasource = dolphin_table, set(temperature = 1.2)),
            quote!(
                fn dolphin_spoilers(config: &mut GameConfig) {
                    config.spoilers = true;
                }
            ),
        )));
    }
}

mod derive_params {
    use super::*;
    use crate::params::expand;

    #[test]
    fn defaults_by_attribute_and_options_default_to_none() {
        insta::assert_snapshot!(pretty(expand(quote!(
            pub struct GameParams {
                #[param(default = 0.7)]
                pub temperature: f64,
                #[param(default = 0)]
                pub think_ms: u64,
                #[param(default = "llama3:8b")]
                pub model: String,
                pub crash_on_replicate: Option<u64>,
                #[param(default = -1)]
                pub offset: Option<i32>,
            }
        ))));
    }
}

mod derive_metrics {
    use super::*;
    use crate::metrics::expand;

    #[test]
    fn every_field_is_recorded_under_its_name() {
        insta::assert_snapshot!(pretty(expand(quote!(
            pub struct GameMetrics {
                pub win: bool,
                pub rounds: u32,
                pub score: f64,
            }
        ))));
    }

    #[test]
    fn declared_bounds_and_their_errors() {
        insta::assert_snapshot!(pretty(expand(quote!(
            pub struct Scores {
                #[crystallize(bounds = 0..=1)]
                pub accuracy: f64,
                #[crystallize(bounds = -1.5..=2)]
                pub margin: f64,
                pub tokens: i64,
            }
        ))));
        for (attr, message) in [
            (quote!(#[crystallize(bounds = 1..=0)]), "LOW < HIGH"),
            (quote!(#[crystallize(bounds = 0..1)]), "LOW..=HIGH"),
            (quote!(#[crystallize(bound = 0..=1)]), "unknown key 'bound'"),
        ] {
            let error = expand(quote!(pub struct M { #attr pub x: f64 })).to_string();
            assert!(error.contains(message), "{attr}: {error}");
        }
    }
}

/// `crate = path`: every path into the runtime goes through the given crate instead of
/// `::crystallize`.
mod crate_path {
    use super::*;

    fn assert_no_default_crate(expansion: &str) {
        assert!(!expansion.contains("::crystallize::"), "`::crystallize::` remains:\n{expansion}");
        assert!(expansion.contains("::other::cr::__private::"), "the given crate is not used:\n{expansion}");
    }

    #[test]
    fn experiment_with_a_crate_path() {
        let expansion = pretty(crate::experiment::expand(
            quote!(
                crate = ::other::cr,
                datasource = llama_table,
                params(temperature = 0.7),
                expect(dolphin.win < baseline.win),
                observers = [Log::new()],
                jobs = 4
            ),
            quote!(
                fn social_deception(config: GameConfig, ctx: &mut Ctx) -> GameMetrics {
                    play(&config, ctx)
                }
            ),
        ));
        assert_no_default_crate(&expansion);
        insta::assert_snapshot!(expansion);
    }

    #[test]
    fn every_other_macro_with_a_crate_path() {
        let expansions = [
            pretty(crate::datasource::expand(
                quote!(crate = ::other::cr),
                quote!(
                    fn table(ctx: &Ctx) -> Table {
                        load(ctx)
                    }
                ),
            )),
            pretty(crate::step::expand(
                quote!(limit = "ollama", crate = "::other::cr"),
                quote!(
                    async fn ask(q: &str) -> String {
                        q.into()
                    }
                ),
            )),
            pretty(crate::treatment::expand(
                quote!(
                    social_deception,
                    crate = ::other::cr,
                    datasource = t,
                    set(temperature = 1.2),
                    expect(win > baseline.win)
                ),
                quote!(
                    fn hot(config: &mut GameConfig, ctx: &Ctx) {}
                ),
            )),
            pretty(crate::params::expand(quote!(
                #[crystallize(crate = ::other::cr)]
                pub struct P {
                    #[param(default = 1)]
                    pub n: u64,
                }
            ))),
            pretty(crate::metrics::expand(quote!(
                #[crystallize(crate = ::other::cr)]
                pub struct M {
                    pub win: bool,
                }
            ))),
        ];
        for expansion in &expansions {
            assert_no_default_crate(expansion);
        }
    }

    #[test]
    fn unknown_keys_list_crate() {
        let message = crate::datasource::expand(
            quote!(crat = x),
            quote!(
                fn t() -> u8 {
                    0
                }
            ),
        )
        .to_string();
        assert!(message.contains("did you mean `crate`"), "{message}");
        let message = crate::step::expand(
            quote!(limt = "a"),
            quote!(
                fn s() {}
            ),
        )
        .to_string();
        assert!(message.contains("valid keys: limit, timeout, retries, cache, crate"), "{message}");
        let message = crate::params::expand(quote!(
            #[crystallize(krate = x)]
            struct P {}
        ))
        .to_string();
        assert!(message.contains("valid keys: crate"), "{message}");
    }
}

/// The error path: the user's item comes back unchanged, followed by the errors.
mod errors {
    use super::*;

    #[test]
    fn an_invalid_attribute_re_emits_the_item_with_every_error() {
        let tokens = crate::experiment::expand(
            quote!(replicats = 3, seed = 1, seed = 2),
            quote!(
                fn coin(ctx: &mut Ctx) {}
            ),
        );
        insta::assert_snapshot!(tokens.to_string());
    }
}
