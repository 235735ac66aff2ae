//! The board, its temperature, CPU frequency and the Pi firmware's throttling flags.
//!
//! A Pi without cooling reaches 80 °C under load and its firmware slows the CPU, and a weak
//! power supply makes it throttle as well; latency then grows for every user. These files
//! exist only on some hosts (none in a container, no `get_throttled` off a Pi): a missing
//! file is "unknown", never an error.

use super::{Check, Host, Status};

const MODEL: &str = "/proc/device-tree/model";
const TEMP: &str = "/sys/class/thermal/thermal_zone0/temp";
const GOVERNOR: &str = "/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor";
const CUR_FREQ: &str = "/sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq";
const MAX_FREQ: &str = "/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq";
/// The Pi firmware's flags, as `vcgencmd get_throttled` prints them.
const THROTTLED: &str = "/sys/devices/platform/soc/soc:firmware/get_throttled";

/// The Pi 4 and 5 firmware starts throttling at 80 °C (85 °C hard limit); warn before.
const TEMP_WARN_MILLI: i64 = 70_000;
const TEMP_FAIL_MILLI: i64 = 80_000;

/// Which board this is (information only).
pub(crate) fn model(host: &Host) -> Check {
    match host.read(MODEL) {
        Some(model) if !model.is_empty() => Check::new("board", Status::Info, model),
        _ => Check::new("board", Status::Info, "not a Raspberry Pi / unknown"),
    }
}

pub(crate) fn checks(host: &Host) -> Vec<Check> {
    vec![
        temperature(host.read(TEMP)),
        cpufreq(
            host.read(GOVERNOR),
            host.read(CUR_FREQ),
            host.read(MAX_FREQ),
        ),
        throttled(host.read(THROTTLED)),
    ]
}

/// `temp` is in millidegrees Celsius, as the kernel writes it.
pub(crate) fn temperature(temp: Option<String>) -> Check {
    const NAME: &str = "cpu temperature";
    let Some(milli) = temp.and_then(|t| t.parse::<i64>().ok()) else {
        return Check::new(NAME, Status::Info, "unknown (no thermal zone: not a Pi?)");
    };
    let found = format!("{:.1} °C", milli as f64 / 1000.0);
    let fix = "add cooling: a heatsink with a fan (the Pi 5 Active Cooler, a fan case for a Pi 4)";
    if milli >= TEMP_FAIL_MILLI {
        Check::new(NAME, Status::Fail, format!("{found}: throttling")).fix(fix)
    } else if milli >= TEMP_WARN_MILLI {
        Check::new(NAME, Status::Warn, format!("{found}: close to throttling")).fix(fix)
    } else {
        Check::new(NAME, Status::Ok, found)
    }
}

pub(crate) fn cpufreq(governor: Option<String>, cur: Option<String>, max: Option<String>) -> Check {
    const NAME: &str = "cpu frequency";
    let mhz = |khz: Option<String>| khz.and_then(|k| k.parse::<u64>().ok()).map(|k| k / 1000);
    let Some(governor) = governor else {
        return Check::new(NAME, Status::Info, "unknown (no cpufreq)");
    };
    let found = match (mhz(cur), mhz(max)) {
        (Some(cur), Some(max)) => format!("{cur} of {max} MHz, governor {governor}"),
        _ => format!("governor {governor}"),
    };
    if governor == "powersave" {
        return Check::new(NAME, Status::Warn, found)
            .fix("the powersave governor keeps the CPU at its lowest clock: use ondemand");
    }
    Check::new(NAME, Status::Ok, found)
}

/// The bits of `get_throttled`: 0-3 are happening now, 16-19 have happened since boot.
const FLAGS: [(u32, &str); 4] = [
    (0, "under-voltage"),
    (1, "frequency capped"),
    (2, "throttled"),
    (3, "soft temperature limit"),
];

pub(crate) fn throttled(value: Option<String>) -> Check {
    const NAME: &str = "pi throttling";
    let Some(text) = value else {
        return Check::new(
            NAME,
            Status::Info,
            "unknown (no Pi firmware flags: not a Pi)",
        );
    };
    let digits = text
        .trim_start_matches("throttled=")
        .trim_start_matches("0x");
    let Ok(bits) = u32::from_str_radix(digits, 16) else {
        return Check::new(NAME, Status::Info, format!("unreadable: {text:?}"));
    };
    let names = |shift: u32| -> Vec<&str> {
        FLAGS
            .iter()
            .filter(|(bit, _)| bits & (1 << (bit + shift)) != 0)
            .map(|(_, name)| *name)
            .collect()
    };
    let (now, past) = (names(0), names(16));
    let found = format!(
        "0x{bits:x}: now {}; since boot {}",
        if now.is_empty() {
            "none".to_owned()
        } else {
            now.join(", ")
        },
        if past.is_empty() {
            "none".to_owned()
        } else {
            past.join(", ")
        },
    );
    let power = "use the official power supply (5 V 3 A for a Pi 4, 5 V 5 A for a Pi 5)";
    let cooling = "add cooling (docs/raspberry-pi.md)";
    if now.contains(&"under-voltage") {
        Check::new(NAME, Status::Fail, found).fix(power)
    } else if !now.is_empty() {
        Check::new(NAME, Status::Fail, found).fix(cooling)
    } else if past.contains(&"under-voltage") {
        Check::new(NAME, Status::Warn, found).fix(power)
    } else if !past.is_empty() {
        Check::new(NAME, Status::Warn, found).fix(cooling)
    } else {
        Check::new(NAME, Status::Ok, found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::fake::FakeHost;

    fn s(v: &str) -> Option<String> {
        Some(v.to_owned())
    }

    #[test]
    fn temperatures() {
        assert_eq!(temperature(s("48312")).status, Status::Ok);
        assert_eq!(temperature(s("48312")).found, "48.3 °C");
        assert_eq!(temperature(s("72000")).status, Status::Warn);
        assert_eq!(temperature(s("81500")).status, Status::Fail);
        assert_eq!(temperature(None).status, Status::Info);
        assert_eq!(temperature(s("n/a")).status, Status::Info);
    }

    #[test]
    fn frequencies() {
        let ok = cpufreq(s("ondemand"), s("1500000"), s("2400000"));
        assert_eq!(ok.status, Status::Ok);
        assert_eq!(ok.found, "1500 of 2400 MHz, governor ondemand");
        assert_eq!(cpufreq(s("powersave"), None, None).status, Status::Warn);
        assert_eq!(cpufreq(None, s("1"), s("2")).status, Status::Info);
    }

    #[test]
    fn pi_throttling_flags() {
        assert_eq!(throttled(s("0x0")).status, Status::Ok);
        // Under-voltage right now: the power supply is too weak.
        let uv = throttled(s("0x50005"));
        assert_eq!(uv.status, Status::Fail);
        assert!(
            uv.found.contains("now under-voltage, throttled"),
            "{}",
            uv.found
        );
        assert!(uv.fix.contains("power supply"), "{}", uv.fix);
        // Throttled by heat now.
        let hot = throttled(s("0x80008"));
        assert_eq!(hot.status, Status::Fail);
        assert!(hot.fix.contains("cooling"));
        // Only in the past: a warning.
        let past = throttled(s("0x50000"));
        assert_eq!(past.status, Status::Warn);
        assert!(
            past.found.contains("since boot under-voltage, throttled"),
            "{}",
            past.found
        );
        // vcgencmd's spelling reads the same.
        assert_eq!(throttled(s("throttled=0x0")).status, Status::Ok);
        assert_eq!(throttled(None).status, Status::Info);
        assert_eq!(throttled(s("zz")).status, Status::Info);
    }

    #[test]
    fn a_pi_tree_and_a_container() {
        let pi = FakeHost::new(&[
            ("proc/device-tree/model", "Raspberry Pi 4 Model B Rev 1.4\0"),
            ("sys/class/thermal/thermal_zone0/temp", "51234\n"),
            (
                "sys/devices/system/cpu/cpu0/cpufreq/scaling_governor",
                "ondemand\n",
            ),
            ("sys/devices/platform/soc/soc:firmware/get_throttled", "0\n"),
        ]);
        assert_eq!(model(&pi.host()).found, "Raspberry Pi 4 Model B Rev 1.4");
        let statuses: Vec<_> = checks(&pi.host()).iter().map(|c| c.status).collect();
        assert_eq!(statuses, [Status::Ok, Status::Ok, Status::Ok]);

        let container = FakeHost::new(&[]);
        assert!(model(&container.host())
            .found
            .contains("not a Raspberry Pi"));
        for c in checks(&container.host()) {
            assert_eq!(c.status, Status::Info, "{c:?}");
        }
    }
}
