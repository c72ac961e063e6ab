use crystallize::prelude::*;

/// Neither `Serialize` nor `Deserialize`.
pub struct Reply {
    pub text: String,
}

/// Not `Serialize`.
pub struct Client;

#[derive(Serialize)]
pub struct Question {
    pub text: String,
}

// The output is stored: it must be `Serialize + DeserializeOwned`.
#[step(cache)]
fn ask(question: &Question) -> Reply {
    Reply { text: question.text.clone() }
}

// An argument is part of the key: it must be `Serialize`, or skipped.
#[step(cache)]
fn ask_with(client: &Client, question: &Question) -> String {
    let _ = client;
    question.text.clone()
}

// A `Result` stores only its `Ok` value, which must be serializable (the error need not be).
#[step(cache)]
async fn ask_async(question: &Question) -> Result<Reply, std::io::Error> {
    Ok(Reply { text: question.text.clone() })
}

crystallize::main!();
