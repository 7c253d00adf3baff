"""Who the made-up people are: regions with their time zones, countries, locales and cities,
names per language, and the other lists ``ccm seed`` draws from."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Region:
    weight: int
    timezone: str
    country: str
    locales: tuple[str, ...]
    cities: tuple[str, ...]
    names: str
    """The name list its people take theirs from (see NAMES)."""


REGIONS = (
    Region(22, "America/New_York", "US", ("en-US",), ("New York", "Boston", "Philadelphia", "Atlanta", "Miami"), "en"),
    Region(10, "America/Chicago", "US", ("en-US", "es-US"), ("Chicago", "Houston", "Dallas", "Minneapolis"), "en"),
    Region(4, "America/Denver", "US", ("en-US",), ("Denver", "Salt Lake City", "Albuquerque"), "en"),
    Region(12, "America/Los_Angeles", "US", ("en-US", "es-US"), ("Los Angeles", "San Francisco", "Seattle"), "en"),
    Region(3, "America/Toronto", "CA", ("en-CA", "fr-CA"), ("Toronto", "Montreal", "Ottawa"), "en"),
    Region(3, "America/Mexico_City", "MX", ("es-MX",), ("Mexico City", "Guadalajara", "Monterrey"), "es"),
    Region(4, "America/Sao_Paulo", "BR", ("pt-BR",), ("São Paulo", "Rio de Janeiro", "Belo Horizonte"), "pt"),
    Region(8, "Europe/London", "GB", ("en-GB",), ("London", "Manchester", "Birmingham", "Edinburgh"), "en"),
    Region(6, "Europe/Berlin", "DE", ("de-DE",), ("Berlin", "Munich", "Hamburg", "Cologne"), "de"),
    Region(5, "Europe/Paris", "FR", ("fr-FR",), ("Paris", "Lyon", "Marseille", "Toulouse"), "fr"),
    Region(3, "Europe/Madrid", "ES", ("es-ES",), ("Madrid", "Barcelona", "Valencia", "Seville"), "es"),
    Region(5, "Asia/Kolkata", "IN", ("en-IN", "hi-IN"), ("Mumbai", "Bengaluru", "Delhi", "Chennai"), "hi"),
    Region(4, "Asia/Tokyo", "JP", ("ja-JP",), ("Tokyo", "Osaka", "Yokohama", "Nagoya"), "ja"),
    Region(2, "Asia/Singapore", "SG", ("en-SG",), ("Singapore",), "en"),
    Region(3, "Australia/Sydney", "AU", ("en-AU",), ("Sydney", "Melbourne", "Brisbane"), "en"),
    Region(2, "Africa/Lagos", "NG", ("en-NG",), ("Lagos", "Abuja", "Ibadan"), "en"),
)
NAMES = {
    "en": (
        (
            "James",
            "Mary",
            "Robert",
            "Patricia",
            "John",
            "Jennifer",
            "Michael",
            "Linda",
            "David",
            "Elizabeth",
            "William",
            "Barbara",
            "Richard",
            "Susan",
            "Joseph",
            "Jessica",
            "Thomas",
            "Sarah",
            "Ada",
            "Grace",
        ),
        (
            "Smith",
            "Johnson",
            "Williams",
            "Brown",
            "Jones",
            "Miller",
            "Davis",
            "Wilson",
            "Anderson",
            "Taylor",
            "Thomas",
            "Moore",
            "Martin",
            "Jackson",
            "Thompson",
            "White",
            "Harris",
            "Clark",
            "Lovelace",
            "Hopper",
        ),
    ),
    "es": (
        ("José", "María", "Juan", "Lucía", "Carlos", "Sofía", "Luis", "Valentina", "Miguel", "Camila"),
        ("García", "Rodríguez", "Martínez", "Hernández", "López", "González", "Pérez", "Sánchez", "Ramírez", "Torres"),
    ),
    "pt": (
        ("João", "Ana", "Pedro", "Beatriz", "Lucas", "Mariana", "Gabriel", "Larissa", "Rafael", "Juliana"),
        ("Silva", "Santos", "Oliveira", "Souza", "Lima", "Pereira", "Ferreira", "Costa", "Almeida", "Ribeiro"),
    ),
    "de": (
        ("Lukas", "Anna", "Leon", "Lea", "Finn", "Hannah", "Jonas", "Mia", "Paul", "Emma"),
        ("Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker", "Schulz", "Hoffmann"),
    ),
    "fr": (
        ("Louis", "Camille", "Gabriel", "Léa", "Arthur", "Chloé", "Jules", "Manon", "Hugo", "Inès"),
        ("Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand", "Leroy", "Moreau"),
    ),
    "hi": (
        ("Aarav", "Ananya", "Vihaan", "Diya", "Arjun", "Isha", "Rohan", "Priya", "Kabir", "Saanvi"),
        ("Sharma", "Verma", "Patel", "Gupta", "Singh", "Kumar", "Reddy", "Iyer", "Nair", "Das"),
    ),
    "ja": (
        ("Haruto", "Yui", "Sota", "Aoi", "Yuto", "Hina", "Riku", "Sakura", "Kaito", "Mei"),
        ("Sato", "Suzuki", "Takahashi", "Tanaka", "Watanabe", "Ito", "Yamamoto", "Nakamura", "Kobayashi", "Kato"),
    ),
}
INVALID_TIMEZONES = ("Mars/Olympus_Mons", "Europe/Londn", "GMT+25", "America/New York", "EST-5")
DOMAINS = ("example.com",) * 10 + ("example.org",) * 4 + ("example.net",) * 3 + ("mail.test", "mail.test", "shop.test")
PLANS = ("free",) * 12 + ("pro",) * 5 + ("team",) * 2 + ("enterprise",)
PAGES = ("Home", "Pricing", "Product", "Blog", "Docs", "Checkout", "Account")
PRODUCTS = tuple(f"sku-{n:04d}" for n in range(1, 201))
