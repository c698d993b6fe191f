//! Card payments for the boutique (the demo's `paymentservice`): checks the
//! card number (Luhn checksum and a known card type), accepts only VISA and
//! MasterCard, refuses expired cards (today's date from `wasi:clocks`), and
//! answers a transaction id — derived from the card and the amount rather
//! than drawn at random, so outputs are deterministic. Nothing is charged
//! for real. Exports `boutique:shop/payment@0.1.0`.

mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "boutique:shop/payment-world",
    });
}

use bindings::boutique::shop::types::{CreditCardInfo, Money, PaymentError};
use bindings::exports::boutique::shop::payment::Guest;
use boutique_common::calendar::today;
use boutique_common::{ids, money};

/// Card networks recognised from the number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CardType {
    Visa,
    MasterCard,
    Amex,
    Discover,
    DinersClub,
    Jcb,
}

impl CardType {
    fn name(self) -> &'static str {
        match self {
            CardType::Visa => "visa",
            CardType::MasterCard => "mastercard",
            CardType::Amex => "amex",
            CardType::Discover => "discover",
            CardType::DinersClub => "dinersclub",
            CardType::Jcb => "jcb",
        }
    }

    fn accepted(self) -> bool {
        matches!(self, CardType::Visa | CardType::MasterCard)
    }
}

/// Why a card is refused (the demo's messages).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Refusal {
    Invalid(String),
    Unaccepted(String),
    Expired(String),
}

/// The digits of `number`, which may group them with spaces or dashes.
fn digits(number: &str) -> Option<String> {
    let digits: String = number.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
    (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())).then_some(digits)
}

/// Whether `digits` passes the Luhn checksum.
fn luhn(digits: &str) -> bool {
    let mut sum = 0;
    for (i, byte) in digits.bytes().rev().enumerate() {
        let mut d = u32::from(byte - b'0');
        if i % 2 == 1 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    sum % 10 == 0
}

/// The card type of `digits`, from its prefix and length.
fn card_type(digits: &str) -> Option<CardType> {
    let prefix = |n: usize| digits.get(..n).and_then(|p| p.parse::<u32>().ok());
    let len = digits.len();
    let in_range =
        |n: usize, low: u32, high: u32| prefix(n).is_some_and(|p| (low..=high).contains(&p));
    if digits.starts_with('4') && matches!(len, 13 | 16 | 19) {
        Some(CardType::Visa)
    } else if (in_range(2, 51, 55) || in_range(4, 2221, 2720)) && len == 16 {
        Some(CardType::MasterCard)
    } else if (in_range(2, 34, 34) || in_range(2, 37, 37)) && len == 15 {
        Some(CardType::Amex)
    } else if (in_range(4, 6011, 6011) || in_range(3, 644, 649) || in_range(2, 65, 65))
        && matches!(len, 16 | 19)
    {
        Some(CardType::Discover)
    } else if (in_range(3, 300, 305) || in_range(2, 36, 36) || in_range(2, 38, 39)) && len == 14 {
        Some(CardType::DinersClub)
    } else if in_range(4, 3528, 3589) && len == 16 {
        Some(CardType::Jcb)
    } else {
        None
    }
}

/// Checks a card on `today` (year, month); its type.
fn check_card(
    number: &str,
    year: i32,
    month: i32,
    today: (i32, i32),
) -> Result<(String, CardType), Refusal> {
    let invalid = || Refusal::Invalid("Credit card info is invalid".to_string());
    let digits = digits(number).ok_or_else(invalid)?;
    if !luhn(&digits) {
        return Err(invalid());
    }
    let kind = card_type(&digits).ok_or_else(invalid)?;
    if !kind.accepted() {
        return Err(Refusal::Unaccepted(format!(
            "Sorry, we cannot process {} credit cards. Only VISA or MasterCard is accepted.",
            kind.name()
        )));
    }
    if !(1..=12).contains(&month) {
        return Err(Refusal::Invalid(format!(
            "Credit card info is invalid: no month {month}"
        )));
    }
    let (this_year, this_month) = today;
    if i64::from(this_year) * 12 + i64::from(this_month) > i64::from(year) * 12 + i64::from(month) {
        let ending = &digits[digits.len().saturating_sub(4)..];
        return Err(Refusal::Expired(format!(
            "Your credit card (ending {ending}) expired on {month}/{year}"
        )));
    }
    Ok((digits, kind))
}

struct Payment;

impl Guest for Payment {
    fn charge(amount: Money, card: CreditCardInfo) -> Result<String, PaymentError> {
        let total = money::Money::new(amount.currency_code.clone(), amount.units, amount.nanos);
        if !total.is_valid() || total.is_negative() || total.currency_code.is_empty() {
            return Err(PaymentError::InvalidAmount(format!(
                "cannot charge {} {} units {} nanos",
                amount.currency_code, amount.units, amount.nanos
            )));
        }
        let year = card.credit_card_expiration_year;
        // Two-digit years are this century's.
        let year = if (0..100).contains(&year) {
            year + 2000
        } else {
            year
        };
        let (digits, kind) = check_card(
            &card.credit_card_number,
            year,
            card.credit_card_expiration_month,
            today(),
        )
        .map_err(|refusal| match refusal {
            Refusal::Invalid(m) => PaymentError::InvalidCard(m),
            Refusal::Unaccepted(m) => PaymentError::UnacceptedCard(m),
            Refusal::Expired(m) => PaymentError::ExpiredCard(m),
        })?;
        let ending = &digits[digits.len().saturating_sub(4)..];
        amimono_sdk::log::debug(&format!(
            "Transaction processed: {} ending {ending}, amount: {}",
            kind.name(),
            money::render(&total)
        ));
        Ok(ids::uuid_like(&[
            "charge",
            &digits,
            &amount.currency_code,
            &amount.units.to_string(),
            &amount.nanos.to_string(),
        ]))
    }
}

// Exported only when building the component (see examples/hello/greeter).
#[cfg(target_arch = "wasm32")]
bindings::export!(Payment with_types_in bindings);
#[cfg(not(target_arch = "wasm32"))]
const _: Payment = Payment;

#[cfg(test)]
mod tests {
    use super::*;

    const TODAY: (i32, i32) = (2026, 11);

    #[test]
    fn luhn_checksum() {
        assert!(luhn("4432801561520454"));
        assert!(luhn("4111111111111111"));
        assert!(luhn("5555555555554444"));
        assert!(!luhn("4432801561520455"));
        assert!(!luhn("4111111111111112"));
        assert!(luhn("0"));
    }

    #[test]
    fn card_types() {
        assert_eq!(card_type("4432801561520454"), Some(CardType::Visa));
        assert_eq!(card_type("4222222222222"), Some(CardType::Visa));
        assert_eq!(card_type("5555555555554444"), Some(CardType::MasterCard));
        assert_eq!(card_type("2221000000000009"), Some(CardType::MasterCard));
        assert_eq!(card_type("378282246310005"), Some(CardType::Amex));
        assert_eq!(card_type("6011111111111117"), Some(CardType::Discover));
        assert_eq!(card_type("30569309025904"), Some(CardType::DinersClub));
        assert_eq!(card_type("3530111333300000"), Some(CardType::Jcb));
        assert_eq!(card_type("1234567812345670"), None);
        assert_eq!(card_type("44328015615204"), None);
    }

    #[test]
    fn accepts_visa_and_mastercard() {
        assert_eq!(
            check_card("4432-8015-6152-0454", 2030, 1, TODAY),
            Ok(("4432801561520454".to_string(), CardType::Visa))
        );
        assert_eq!(
            check_card("5555 5555 5555 4444", 2026, 11, TODAY).map(|(_, k)| k),
            Ok(CardType::MasterCard)
        );
    }

    #[test]
    fn refusals() {
        let invalid = Err(Refusal::Invalid("Credit card info is invalid".into()));
        assert_eq!(check_card("4432-8015-6152-0455", 2030, 1, TODAY), invalid);
        assert_eq!(check_card("", 2030, 1, TODAY), invalid);
        assert_eq!(check_card("4432x8015", 2030, 1, TODAY), invalid);
        assert_eq!(check_card("1234567812345670", 2030, 1, TODAY), invalid);
        assert_eq!(
            check_card("378282246310005", 2030, 1, TODAY),
            Err(Refusal::Unaccepted(
                "Sorry, we cannot process amex credit cards. Only VISA or MasterCard is accepted."
                    .into()
            ))
        );
        assert_eq!(
            check_card("4432801561520454", 2026, 10, TODAY),
            Err(Refusal::Expired(
                "Your credit card (ending 0454) expired on 10/2026".into()
            ))
        );
        assert!(matches!(
            check_card("4432801561520454", 2030, 13, TODAY),
            Err(Refusal::Invalid(_))
        ));
    }
}
