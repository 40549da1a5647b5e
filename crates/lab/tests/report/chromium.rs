//! The HTML as a browser draws it: chromium renders the sample page headless, and the
//! screenshot must hold a real page (many colours, both curve colours, mostly light
//! background), not a blank or an error page. Set NEARNATIVE_REPORT_SHOT_DIR to keep the
//! page and the PNG for a look (bench/lab-report-screenshot.sh does).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use nearnative_lab::report::write_html;

use super::sample::full_report;

const WINDOW: (u32, u32) = (1200, 2000);
/// The curve colours of html.rs: latency-sensitive blue and default orange.
const LS_RGB: [u8; 3] = [0x18, 0x64, 0xab];
const DEFAULT_RGB: [u8; 3] = [0xe8, 0x59, 0x0c];
const CHROMIUM_TIME_LIMIT: Duration = Duration::from_secs(60);

#[test]
#[ignore = "needs chromium (apt-get install chromium)"]
fn report_renders_legibly_needs_chromium() {
    let chromium = chromium().expect("needs chromium on PATH (apt-get install chromium)");
    let temp = tempfile::tempdir().unwrap();
    let dir = std::env::var_os("NEARNATIVE_REPORT_SHOT_DIR")
        .map_or_else(|| temp.path().to_owned(), PathBuf::from);
    let (page, shot) = (dir.join("lab-report.html"), dir.join("lab-report.png"));
    write_html(&full_report(), &page).unwrap();
    screenshot(&chromium, temp.path(), &page, &shot);
    let image = Rgb::read(&shot);
    assert_eq!((image.width, image.height), WINDOW);
    let colours = image.distinct_colours();
    assert!(
        colours > 200,
        "only {colours} colours: a blank or error page?"
    );
    let light = image.share(|p| p.iter().all(|&c| c > 200));
    assert!((0.5..0.99).contains(&light), "light share {light}");
    for (what, rgb) in [("latency-sensitive", LS_RGB), ("default", DEFAULT_RGB)] {
        let drawn = image.share(|p| p.iter().zip(rgb).all(|(&a, b)| a.abs_diff(b) < 24));
        assert!(
            drawn > 0.0005,
            "{what} curves cover only {drawn} of the page"
        );
    }
}

fn chromium() -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| Path::new(dir).join("chromium"))
        .find(|path| path.is_file())
}

fn screenshot(chromium: &Path, profile: &Path, page: &Path, shot: &Path) {
    let mut child = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
        ])
        .arg(format!(
            "--user-data-dir={}",
            profile.join("profile").display()
        ))
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("--window-size={},{}", WINDOW.0, WINDOW.1))
        .arg(format!("file://{}", page.display()))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > CHROMIUM_TIME_LIMIT {
            child.kill().unwrap();
            panic!("chromium took over {CHROMIUM_TIME_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(shot.is_file(), "chromium wrote no screenshot");
}

/// A decoded screenshot as 8-bit RGB.
struct Rgb {
    width: u32,
    height: u32,
    pixels: Vec<[u8; 3]>,
}

impl Rgb {
    fn read(path: &Path) -> Rgb {
        let mut decoder =
            png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
        decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
        let mut reader = decoder.read_info().unwrap();
        let mut buffer = vec![0; reader.output_buffer_size().unwrap()];
        let frame = reader.next_frame(&mut buffer).unwrap();
        let channels = frame.color_type.samples();
        let pixels = buffer[..frame.buffer_size()]
            .chunks_exact(channels)
            .map(|p| {
                if channels >= 3 {
                    [p[0], p[1], p[2]]
                } else {
                    [p[0]; 3]
                }
            })
            .collect();
        Rgb {
            width: frame.width,
            height: frame.height,
            pixels,
        }
    }

    fn distinct_colours(&self) -> usize {
        self.pixels
            .iter()
            .collect::<std::collections::HashSet<_>>()
            .len()
    }

    fn share(&self, wanted: impl Fn(&[u8; 3]) -> bool) -> f64 {
        self.pixels.iter().filter(|p| wanted(p)).count() as f64 / self.pixels.len() as f64
    }
}
