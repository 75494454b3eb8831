//! Failure signatures in words: what the error means, its usual cause and what to change,
//! looked up in the matrix's own explanations first, then in the ones cachegate ships
//! (`reports/explanations.toml`). The first pattern found in the signature wins.

use regex::Regex;

use crate::config::report_section::{bundled_explanations, Explanation, ReportOptions};

pub struct Explainer {
    entries: Vec<(Regex, Explanation)>,
}

impl Explainer {
    /// The run's explanations (from `run.json`), then the bundled ones.
    pub fn new(options: Option<&ReportOptions>) -> Explainer {
        let user = options.map(|o| o.explanations.clone()).unwrap_or_default();
        let entries = user
            .into_iter()
            .chain(bundled_explanations())
            // Patterns were compiled when the matrix was loaded; one that no longer compiles
            // (a hand-edited run.json) explains nothing rather than failing the report.
            .filter_map(|e| Regex::new(&e.pattern).ok().map(|re| (re, e)))
            .collect();
        Explainer { entries }
    }

    pub fn explain(&self, signature: &str) -> Option<&Explanation> {
        self.entries
            .iter()
            .find(|(re, _)| re.is_match(signature))
            .map(|(_, e)| e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_matrix_s_own_explanation_wins_over_the_bundled_one() {
        let sig = "TypeError: AbstractConnection.__init__() got an unexpected keyword argument 'CLIENT_CLASS'";
        let bundled = Explainer::new(None);
        let shipped = bundled
            .explain(sig)
            .expect("a bundled explanation for CLIENT_CLASS");
        let own = ReportOptions {
            explanations: vec![Explanation {
                pattern: "CLIENT_CLASS".into(),
                means: "ours".into(),
                cause: "c".into(),
                fix: "f".into(),
            }],
            ..Default::default()
        };
        let theirs = Explainer::new(Some(&own));
        assert_eq!(theirs.explain(sig).unwrap().means, "ours");
        assert_ne!(shipped.means, "ours");
        assert!(bundled.explain("nothing anyone wrote about").is_none());
    }
}
