//! Human units in `gateway.yaml`: durations (`300ms`, `5s`, `2m`, `1h`) and sizes (`512B`, `64KiB`,
//! `1MiB`, `10KB`). Bare numbers are refused: the unit is always written.

use std::time::Duration;

/// Parses `300ms`, `5s`, `2m`, `1h` (integer amounts).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let (amount, unit) = split_number(text)?;
    let millis = match unit {
        "ms" => Some(amount),
        "s" => amount.checked_mul(1_000),
        "m" => amount.checked_mul(60_000),
        "h" => amount.checked_mul(3_600_000),
        _ => {
            return Err(format!(
                "`{text}` is not a duration (write e.g. 300ms, 5s, 2m, 1h)"
            ))
        }
    };
    millis
        .map(Duration::from_millis)
        .ok_or_else(|| format!("`{text}` is too long a duration"))
}

/// Parses `512B`, `64KiB`, `1MiB`, `1GiB` (1024-based) and `10KB`, `5MB`, `1GB` (1000-based).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let (amount, unit) = split_number(text)?;
    let factor: u64 = match unit {
        "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        _ => {
            return Err(format!(
                "`{text}` is not a size (write e.g. 512B, 64KiB, 1MiB)"
            ))
        }
    };
    amount
        .checked_mul(factor)
        .ok_or_else(|| format!("`{text}` is too large a size"))
}

fn split_number(text: &str) -> Result<(u64, &str), String> {
    let text = text.trim();
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return Err(format!(
            "`{text}` must start with a whole number and end with a unit"
        ));
    }
    let amount = text[..digits]
        .parse()
        .map_err(|_| format!("`{text}` is out of range"))?;
    Ok((amount, text[digits..].trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_need_a_unit() {
        assert_eq!(parse_duration("300ms"), Ok(Duration::from_millis(300)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("-5s").is_err());
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("99999999999999999999h").is_err());
    }

    #[test]
    fn sizes_are_binary_or_decimal() {
        assert_eq!(parse_size("512B"), Ok(512));
        assert_eq!(parse_size("64KiB"), Ok(65_536));
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("10KB"), Ok(10_000));
        assert!(parse_size("64").is_err());
        assert!(parse_size("1.5MiB").is_err());
    }
}
