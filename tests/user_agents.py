"""Real browsers' ``User-Agent`` headers, for the binding tests."""

CHROME_119_WINDOWS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/119.0.0.0 Safari/537.36"
)
CHROME_120_WINDOWS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36"
)
FIREFOX_121_WINDOWS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0"
)
CHROME_120_MAC = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36"
)
SAFARI_IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1_2 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.1.2 Mobile/15E148 Safari/604.1"
)
# A real user agent padded to 8 KB, as a hostile or broken client might send.
HUGE = CHROME_120_WINDOWS + " " + "x" * (8192 - len(CHROME_120_WINDOWS) - 1)
# A device family that the parser cuts from the header itself, 300 characters long.
LONG_DEVICE = "Mozilla/5.0 (Linux; Android 10; SAMSUNG " + "x" * 300 + ") AppleWebKit/537.36"
