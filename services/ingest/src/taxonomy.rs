//! Haven's one category taxonomy: the UK Safer Internet Centre's "appropriate filtering"
//! categories, plus illegal content — the IWF child sexual abuse list, the CTIRU list of
//! unlawful terrorist content and, since 2025, coercive control and intimate image abuse.
//! Every vendor's label is mapped onto it by the table in `mappings/categories.csv`.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// Unjust or prejudicial treatment of people with protected characteristics.
    Discrimination,
    /// Content that expresses hate against people for who they are.
    HateSpeech,
    /// Illegal use of drugs or substances.
    Drugs,
    /// Terrorism and terrorist ideologies, violence or intolerance.
    Extremism,
    Gambling,
    /// Malware, hacking tools, phishing, filter-bypass proxies.
    MalwareHacking,
    Pornography,
    /// Illegal provision of copyrighted material.
    Piracy,
    /// Self-harm, suicide or eating disorders: a risk to life.
    SelfHarm,
    /// Physical force intended to hurt or kill.
    Violence,
    /// Mis- and disinformation.
    Misinformation,
    /// Illegal: the Internet Watch Foundation's list of child sexual abuse URLs.
    IllegalChildAbuseIwf,
    /// Illegal: the police-assessed list of unlawful terrorist content (CTIRU).
    IllegalTerroristContentCtiru,
    /// Illegal (priority offence since 2025): controlling or coercive behaviour.
    IllegalCoerciveControl,
    /// Illegal (priority offence since 2025): intimate image abuse.
    IllegalIntimateImageAbuse,
    /// The vendor gave a category that maps to none of the above.
    Other,
    /// The vendor gave no category at all (a plain Squid ACL denial).
    Uncategorised,
}

impl Category {
    pub const ALL: [Category; 17] = [
        Category::Discrimination,
        Category::HateSpeech,
        Category::Drugs,
        Category::Extremism,
        Category::Gambling,
        Category::MalwareHacking,
        Category::Pornography,
        Category::Piracy,
        Category::SelfHarm,
        Category::Violence,
        Category::Misinformation,
        Category::IllegalChildAbuseIwf,
        Category::IllegalTerroristContentCtiru,
        Category::IllegalCoerciveControl,
        Category::IllegalIntimateImageAbuse,
        Category::Other,
        Category::Uncategorised,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Category::Discrimination => "discrimination",
            Category::HateSpeech => "hate_speech",
            Category::Drugs => "drugs",
            Category::Extremism => "extremism",
            Category::Gambling => "gambling",
            Category::MalwareHacking => "malware_hacking",
            Category::Pornography => "pornography",
            Category::Piracy => "piracy",
            Category::SelfHarm => "self_harm",
            Category::Violence => "violence",
            Category::Misinformation => "misinformation",
            Category::IllegalChildAbuseIwf => "illegal_child_abuse_iwf",
            Category::IllegalTerroristContentCtiru => "illegal_terrorist_content_ctiru",
            Category::IllegalCoerciveControl => "illegal_coercive_control",
            Category::IllegalIntimateImageAbuse => "illegal_intimate_image_abuse",
            Category::Other => "other",
            Category::Uncategorised => "uncategorised",
        }
    }

    /// Illegal content: alerts at once as critical, the host restricted to the DSL.
    pub fn is_illegal(self) -> bool {
        matches!(
            self,
            Category::IllegalChildAbuseIwf
                | Category::IllegalTerroristContentCtiru
                | Category::IllegalCoerciveControl
                | Category::IllegalIntimateImageAbuse
        )
    }

    /// Which of two categories wins when a vendor gives several labels for one request
    /// (Umbrella's `Business Services,Malware`): the higher, the graver. Illegal content
    /// first, then risk to life, then the rest roughly by how a DSL would triage them.
    pub fn gravity(self) -> u8 {
        match self {
            Category::IllegalChildAbuseIwf => 16,
            Category::IllegalTerroristContentCtiru => 15,
            Category::IllegalIntimateImageAbuse => 14,
            Category::IllegalCoerciveControl => 13,
            Category::SelfHarm => 12,
            Category::Extremism => 11,
            Category::Pornography => 10,
            Category::Violence => 9,
            Category::HateSpeech => 8,
            Category::Discrimination => 7,
            Category::Drugs => 6,
            Category::Gambling => 5,
            Category::MalwareHacking => 4,
            Category::Misinformation => 3,
            Category::Piracy => 2,
            Category::Other => 1,
            Category::Uncategorised => 0,
        }
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown category name.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown category (expected one of: {})", Category::ALL.map(Category::as_str).join(", "))]
pub struct UnknownCategory;

impl FromStr for Category {
    type Err = UnknownCategory;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        Category::ALL.into_iter().find(|category| category.as_str() == raw).ok_or(UnknownCategory)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_gravity_orders_every_category() {
        let mut gravities = Vec::new();
        for category in Category::ALL {
            assert_eq!(category.as_str().parse::<Category>(), Ok(category));
            gravities.push(category.gravity());
        }
        gravities.sort_unstable();
        gravities.dedup();
        assert_eq!(gravities.len(), Category::ALL.len(), "two categories share a gravity");
        let illegal = Category::ALL.into_iter().filter(|c| c.is_illegal());
        assert!(illegal.clone().all(|c| c.gravity() > Category::SelfHarm.gravity()));
        assert_eq!(illegal.count(), 4);
    }
}
