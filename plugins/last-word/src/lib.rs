// src/lib.rs: orders keys by their last word, then by the whole key.
struct LastWord;

impl sop_plugin::KeyOrder for LastWord {
    const NAME: &'static str = "last-word";

    fn encode(key: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
        let text = std::str::from_utf8(key).map_err(|_| "key is not UTF-8".to_string())?;
        let last = text.rsplit(' ').next().unwrap_or("");
        out.extend_from_slice(last.as_bytes());
        out.push(0); // ends the word, so "Ann Lee" sorts before "Bo Leeds"
        out.extend_from_slice(key); // breaks ties: distinct keys stay distinct
        Ok(())
    }
}

sop_plugin::export_key_order!(LastWord);
