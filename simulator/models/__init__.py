"""One model per feed; each turns simulated time into payloads of a real format."""
