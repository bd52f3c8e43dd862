//! A deterministic Spotify catalog generated from a seed and a list of
//! artist names, rendered in the response shapes of the recorded fixtures.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Range;

use serde_json::{Map, Value, json};

use crate::rng::Rng;
use crate::spotify::{AppMode, Endpoint};

const GENRES: &[&str] = &[
    "rock",
    "pop",
    "hip hop",
    "jazz",
    "classical",
    "electronic",
    "k-pop",
    "reggaeton",
    "afrobeats",
    "indie folk",
    "metal",
    "soul",
    "blues",
    "country",
    "bossa nova",
    "chanson",
    "j-rock",
    "dancehall",
    "techno",
    "punk",
];
const FIRST: &[&str] = &[
    "Zoë",
    "Mårten",
    "Aðalsteinn",
    "Łukasz",
    "Siobhán",
    "Chloé",
    "José",
    "Søren",
    "Ngozi",
    "Hiroshi",
    "Priya",
    "Kwame",
    "Ana",
    "Mateo",
    "Yūki",
    "Ìfẹ́",
    "Oksana",
    "Dmitri",
];
const LAST: &[&str] = &[
    "Ødegaard",
    "Nakamura",
    "Okafor",
    "Kowalczyk",
    "Müller",
    "Fernández",
    "Nguyễn",
    "Ó Briain",
    "Petrović",
    "Lindqvist",
    "Haddad",
    "Singh",
    "Costa",
    "Kim",
];
const WORDS: &[&str] = &[
    "Midnight",
    "Golden",
    "Electric",
    "Silent",
    "Wild",
    "Neon",
    "Blue",
    "Broken",
    "Café",
    "Señorita",
    "Über",
    "Nocturne",
    "Déjà Vu",
    "夜明け",
    "Сон",
    "Ψυχή",
    "Corazón",
    "Fjäril",
    "Heart",
    "River",
    "Summer",
    "Ghosts",
    "Paradise",
    "Echoes",
    "Fire",
    "Rain",
    "Satellite",
    "Lovers",
    "Stranger",
    "Gravity",
    "Mañana",
    "Ça Va",
    "Ljubav",
    "Saudade",
];
const MARKETS: &[&str] = &[
    "AD", "AR", "BR", "DE", "ES", "FR", "GB", "JP", "MX", "NG", "SE", "US",
];
const IMAGE_SIZES: [u32; 3] = [640, 300, 64];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlbumType {
    Album,
    Single,
    Compilation,
}

impl AlbumType {
    pub fn as_str(self) -> &'static str {
        match self {
            AlbumType::Album => "album",
            AlbumType::Single => "single",
            AlbumType::Compilation => "compilation",
        }
    }
}

/// The group an album has in one artist's discography.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    Own(AlbumType),
    AppearsOn,
}

impl Group {
    pub fn as_str(self) -> &'static str {
        match self {
            Group::Own(t) => t.as_str(),
            Group::AppearsOn => "appears_on",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Artist {
    pub id: String,
    pub name: String,
    pub genres: Vec<&'static str>,
    pub popularity: u32,
    pub followers: u64,
    pub images: usize,
    /// Listed in the names file (the others are collaborators).
    pub listed: bool,
}

#[derive(Debug, Clone)]
pub struct Album {
    pub id: String,
    pub name: String,
    pub album_type: AlbumType,
    pub artists: Vec<usize>,
    pub release_date: String,
    pub precision: &'static str,
    pub tracks: Range<usize>,
    pub images: usize,
    pub label: String,
    pub upc: String,
    pub popularity: u32,
    pub markets: Vec<&'static str>,
}

#[derive(Debug, Clone)]
pub struct Track {
    pub id: String,
    pub name: String,
    pub album: usize,
    pub artists: Vec<usize>,
    pub disc_number: u32,
    pub track_number: u32,
    pub duration_ms: u32,
    pub explicit: bool,
    pub isrc: String,
    pub popularity: u32,
    pub has_preview: bool,
    pub features: Option<Features>,
}

#[derive(Debug, Clone, Copy)]
pub struct Features {
    pub danceability: f64,
    pub energy: f64,
    pub key: i32,
    pub loudness: f64,
    pub mode: i32,
    pub speechiness: f64,
    pub acousticness: f64,
    pub instrumentalness: f64,
    pub liveness: f64,
    pub valence: f64,
    pub tempo: f64,
    pub time_signature: i32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entity {
    Artist(usize),
    Album(usize),
    Track(usize),
}

#[derive(Debug, Default)]
pub struct Catalog {
    pub artists: Vec<Artist>,
    pub albums: Vec<Album>,
    pub tracks: Vec<Track>,
    /// Each artist's discography: own albums then appearances, by group then
    /// newest first, as Spotify lists them.
    pub discography: Vec<Vec<(usize, Group)>>,
    by_id: HashMap<String, Entity>,
    /// Artists by name while generating, so a collaborator shared by two
    /// listed artists is one artist.
    by_name: HashMap<String, usize>,
}

/// How the rendered objects vary with the request.
#[derive(Debug, Clone, Copy)]
pub struct View<'a> {
    pub mode: AppMode,
    /// `?market=`: hides `available_markets`, adds `is_playable`.
    pub market: Option<&'a str>,
    /// The simulator's own `/v1` URL, for `href` fields.
    pub api: &'a str,
}

impl Catalog {
    /// Generate the catalog of `names` from `seed`. Each artist's share is
    /// drawn from its own stream, so adding a name leaves the others as they were.
    pub fn generate(seed: u64, names: &[String]) -> Catalog {
        let mut c = Catalog::default();
        for name in names {
            c.add_listed(seed, name);
        }
        c.index();
        c
    }

    /// A catalog of at least `tracks` tracks, around generated names added
    /// one at a time until it is that large (benchmarks and load tests).
    pub fn of_size(seed: u64, tracks: usize) -> Catalog {
        let mut c = Catalog::default();
        let mut n = 0u64;
        while c.tracks.len() < tracks {
            n += 1;
            let mut rng = Rng::derived(seed, &format!("name:{n}"));
            let name = format!("{} {} {n}", rng.pick(FIRST), rng.pick(LAST));
            c.add_listed(seed, &name);
        }
        c.index();
        c
    }

    /// A listed artist with its collaborators and every album of both.
    fn add_listed(&mut self, seed: u64, name: &str) {
        let mut rng = Rng::derived(seed, &format!("artist:{name}"));
        let artist = self.add_artist(&mut rng, name.to_string(), true);
        let collaborators: Vec<usize> = (0..collaborator_count(&mut rng))
            .map(|i| {
                let name =
                    collaborator_name(&mut Rng::derived(seed, &format!("collab:{name}:{i}")));
                let mut crng = Rng::derived(seed, &format!("artist:{name}"));
                self.add_artist(&mut crng, name, false)
            })
            .collect();
        let albums = album_count(&mut rng);
        for i in 0..albums {
            self.add_album(&mut rng, seed, artist, &collaborators, i);
        }
        for (i, &collab) in collaborators.iter().enumerate() {
            let mut crng = Rng::derived(seed, &format!("collab-albums:{name}:{i}"));
            for j in 0..crng.range(1, 4) {
                self.add_album(&mut crng, seed, collab, &[artist], j as usize);
            }
        }
    }

    fn add_artist(&mut self, rng: &mut Rng, name: String, listed: bool) -> usize {
        if let Some(&i) = self.by_name.get(&name) {
            return i;
        }
        let popularity = if listed {
            rng.range(35, 95)
        } else {
            rng.range(0, 60)
        } as u32;
        let genres = if rng.chance(0.3) {
            Vec::new()
        } else {
            (0..rng.range(1, 3))
                .map(|_| *rng.pick(GENRES))
                .collect::<Vec<_>>()
        };
        let i = self.artists.len();
        self.artists.push(Artist {
            id: spotify_id(rng),
            name: name.clone(),
            genres: dedup(genres),
            popularity,
            followers: u64::from(popularity).pow(3) * rng.range(1, 40),
            images: if rng.chance(0.1) {
                0
            } else {
                rng.range(1, 3) as usize
            },
            listed,
        });
        self.by_name.insert(name, i);
        i
    }

    fn add_album(&mut self, rng: &mut Rng, seed: u64, owner: usize, guests: &[usize], nth: usize) {
        let kind = rng.unit();
        let (album_type, tracks) = if kind < 0.45 {
            (AlbumType::Single, rng.range(1, 3))
        } else if kind < 0.87 {
            (AlbumType::Album, rng.range(8, 16))
        } else if kind < 0.97 {
            (AlbumType::Compilation, rng.range(12, 30))
        } else {
            (AlbumType::Album, rng.range(51, 120))
        };
        let mut artists = vec![owner];
        if !guests.is_empty() && rng.chance(0.08) {
            artists.push(*rng.pick(guests));
        }
        let year = rng.range(1960, 2026);
        let (release_date, precision) = match rng.below(20) {
            0..=2 => (format!("{year}"), "year"),
            3..=4 => (format!("{year}-{:02}", rng.range(1, 12)), "month"),
            _ => (
                format!("{year}-{:02}-{:02}", rng.range(1, 12), rng.range(1, 28)),
                "day",
            ),
        };
        let album = self.albums.len();
        let first_track = self.tracks.len();
        let discs = if tracks > 30 { 2 } else { 1 };
        let per_disc = tracks.div_ceil(discs);
        for t in 0..tracks {
            let mut track_artists = artists.clone();
            if !guests.is_empty() && rng.chance(0.12) {
                let guest = *rng.pick(guests);
                if !track_artists.contains(&guest) {
                    track_artists.push(guest);
                }
            }
            let features = (!rng.chance(0.05)).then(|| Features {
                danceability: round3(rng.unit()),
                energy: round3(rng.unit()),
                key: rng.range(0, 12) as i32 - 1,
                loudness: round3(-30.0 + 28.0 * rng.unit()),
                mode: rng.below(2) as i32,
                speechiness: round3(rng.unit() * 0.7),
                acousticness: round3(rng.unit()),
                instrumentalness: round3(rng.unit() * rng.unit()),
                liveness: round3(rng.unit() * 0.9),
                valence: round3(rng.unit()),
                tempo: round3(60.0 + 140.0 * rng.unit()),
                time_signature: if rng.chance(0.9) {
                    4
                } else {
                    rng.range(3, 7) as i32
                },
            });
            let mut name = title(rng);
            if rng.chance(0.005) {
                name = format!(
                    "{name} ({})",
                    "Extended Director's Cut ".repeat(12).trim_end()
                );
            }
            self.tracks.push(Track {
                id: spotify_id(rng),
                name,
                album,
                artists: track_artists,
                disc_number: (t / per_disc + 1) as u32,
                track_number: (t % per_disc + 1) as u32,
                duration_ms: rng.range(95_000, 420_000) as u32,
                explicit: rng.chance(0.15),
                isrc: isrc(rng, year),
                popularity: rng.range(0, 90) as u32,
                has_preview: rng.chance(0.2),
                features,
            });
        }
        let mut upc_rng = Rng::derived(seed, &format!("upc:{owner}:{nth}"));
        self.albums.push(Album {
            id: spotify_id(rng),
            name: match album_type {
                AlbumType::Compilation => format!("The Best of {}", title(rng)),
                _ => title(rng),
            },
            album_type,
            artists,
            release_date,
            precision,
            tracks: first_track..self.tracks.len(),
            images: [0, 1, 2, 3, 3, 3, 3, 3][rng.below(8) as usize],
            label: format!("{} Records", rng.pick(WORDS)),
            upc: (0..12)
                .map(|_| char::from(b'0' + upc_rng.below(10) as u8))
                .collect(),
            popularity: rng.range(0, 85) as u32,
            markets: if rng.chance(0.05) {
                Vec::new()
            } else {
                MARKETS
                    .iter()
                    .copied()
                    .filter(|_| rng.chance(0.8))
                    .collect()
            },
        });
    }

    fn index(&mut self) {
        self.by_name = HashMap::new();
        for (i, a) in self.artists.iter().enumerate() {
            self.by_id.insert(a.id.clone(), Entity::Artist(i));
        }
        for (i, a) in self.albums.iter().enumerate() {
            self.by_id.insert(a.id.clone(), Entity::Album(i));
        }
        for (i, t) in self.tracks.iter().enumerate() {
            self.by_id.insert(t.id.clone(), Entity::Track(i));
        }
        let mut disc: Vec<Vec<(usize, Group)>> = vec![Vec::new(); self.artists.len()];
        for (i, album) in self.albums.iter().enumerate() {
            for &a in &album.artists {
                disc[a].push((i, Group::Own(album.album_type)));
            }
            let mut guests: Vec<usize> = self.tracks[album.tracks.clone()]
                .iter()
                .flat_map(|t| t.artists.iter().copied())
                .filter(|a| !album.artists.contains(a))
                .collect();
            guests.sort_unstable();
            guests.dedup();
            for g in guests {
                disc[g].push((i, Group::AppearsOn));
            }
        }
        let rank = |g: Group| match g {
            Group::Own(AlbumType::Album) => 0,
            Group::Own(AlbumType::Single) => 1,
            Group::Own(AlbumType::Compilation) => 2,
            Group::AppearsOn => 3,
        };
        for list in &mut disc {
            list.sort_by(|x, y| {
                rank(x.1)
                    .cmp(&rank(y.1))
                    .then_with(|| {
                        self.albums[y.0]
                            .release_date
                            .cmp(&self.albums[x.0].release_date)
                    })
                    .then_with(|| x.0.cmp(&y.0))
            });
        }
        self.discography = disc;
    }

    /// The fewest requests the endpoints allow for crawling `artists` (found
    /// by `searched` name searches) in `mode`: one token, their discography
    /// pages, their albums (batches of 20 in Extended mode, one each in
    /// Development Mode, with the first 50 tracks inside) and the further
    /// track pages of longer albums, then in Extended mode the full tracks
    /// in batches of 50 and their audio features in batches of 100.
    pub fn minimum_requests(
        &self,
        artists: &[usize],
        mode: AppMode,
        searched: usize,
    ) -> BTreeMap<Endpoint, usize> {
        let per_page = mode.page_limit() as usize;
        let listing_pages: usize = artists
            .iter()
            .map(|&a| self.discography[a].len().div_ceil(per_page).max(1))
            .sum();
        let albums: BTreeSet<usize> = artists
            .iter()
            .flat_map(|&a| self.discography[a].iter().map(|(album, _)| *album))
            .collect();
        let tracks: usize = albums.iter().map(|&a| self.albums[a].tracks.len()).sum();
        let extra_pages: usize = albums
            .iter()
            .map(|&a| self.albums[a].tracks.len().saturating_sub(50).div_ceil(50))
            .sum();
        let mut minimum = BTreeMap::from([
            (Endpoint::Token, 1),
            (Endpoint::Search, searched),
            (Endpoint::ArtistAlbums, listing_pages),
            (Endpoint::AlbumTracks, extra_pages),
        ]);
        match mode {
            AppMode::Extended => minimum.extend([
                (Endpoint::SeveralAlbums, albums.len().div_ceil(20)),
                (Endpoint::SeveralTracks, tracks.div_ceil(50)),
                (Endpoint::SeveralAudioFeatures, tracks.div_ceil(100)),
            ]),
            AppMode::Development => {
                minimum.insert(Endpoint::Album, albums.len());
            }
        }
        minimum.retain(|_, n| *n > 0);
        minimum
    }

    pub fn lookup(&self, id: &str) -> Option<Entity> {
        self.by_id.get(id).copied()
    }

    /// Artists whose name matches `query` ignoring case and accents: exact
    /// matches first, then names containing it, each by popularity.
    pub fn search_artists(&self, query: &str) -> Vec<usize> {
        let q = crate::artist_names::match_key(query);
        if q.is_empty() {
            return Vec::new();
        }
        let mut hits: Vec<(bool, u32, usize)> = self
            .artists
            .iter()
            .enumerate()
            .filter_map(|(i, a)| {
                let key = crate::artist_names::match_key(&a.name);
                key.contains(&q).then_some((key != q, a.popularity, i))
            })
            .collect();
        hits.sort_by(|x, y| x.0.cmp(&y.0).then(y.1.cmp(&x.1)).then(x.2.cmp(&y.2)));
        hits.into_iter().map(|h| h.2).collect()
    }

    // ---- rendering -------------------------------------------------------

    pub fn artist_simplified(&self, i: usize, v: View) -> Value {
        let a = &self.artists[i];
        json!({
            "external_urls": {"spotify": format!("https://open.spotify.com/artist/{}", a.id)},
            "href": format!("{}/artists/{}", v.api, a.id),
            "id": a.id,
            "name": a.name,
            "type": "artist",
            "uri": format!("spotify:artist:{}", a.id),
        })
    }

    pub fn artist_full(&self, i: usize, v: View) -> Value {
        let a = &self.artists[i];
        let mut o = object(self.artist_simplified(i, v));
        o.insert("genres".into(), json!(a.genres));
        o.insert("images".into(), images(&a.id, a.images, [640, 320, 160]));
        if v.mode == AppMode::Extended {
            o.insert(
                "followers".into(),
                json!({"href": null, "total": a.followers}),
            );
            o.insert("popularity".into(), json!(a.popularity));
        }
        Value::Object(o)
    }

    pub fn album_simplified(&self, i: usize, v: View, group: Option<Group>) -> Value {
        let al = &self.albums[i];
        let mut o = Map::new();
        o.insert("album_type".into(), json!(al.album_type.as_str()));
        if let (Some(g), AppMode::Extended) = (group, v.mode) {
            o.insert("album_group".into(), json!(g.as_str()));
        }
        o.insert(
            "artists".into(),
            al.artists
                .iter()
                .map(|&a| self.artist_simplified(a, v))
                .collect(),
        );
        self.markets(&mut o, &al.markets, v, false);
        o.insert(
            "external_urls".into(),
            json!({"spotify": format!("https://open.spotify.com/album/{}", al.id)}),
        );
        o.insert("href".into(), json!(format!("{}/albums/{}", v.api, al.id)));
        o.insert("id".into(), json!(al.id));
        o.insert("images".into(), images(&al.id, al.images, IMAGE_SIZES));
        o.insert("name".into(), json!(al.name));
        o.insert("release_date".into(), json!(al.release_date));
        o.insert("release_date_precision".into(), json!(al.precision));
        o.insert("total_tracks".into(), json!(al.tracks.len()));
        o.insert("type".into(), json!("album"));
        o.insert("uri".into(), json!(format!("spotify:album:{}", al.id)));
        Value::Object(o)
    }

    pub fn album_full(&self, i: usize, v: View) -> Value {
        let al = &self.albums[i];
        let mut o = object(self.album_simplified(i, v, None));
        let year = &al.release_date[..4];
        let owner = &self.artists[al.artists[0]].name;
        o.insert(
            "copyrights".into(),
            json!([
                {"text": format!("© {year} {owner}"), "type": "C"},
                {"text": format!("℗ {year} {owner}"), "type": "P"},
            ]),
        );
        o.insert("external_ids".into(), json!({"upc": al.upc}));
        o.insert("genres".into(), json!([]));
        if v.mode == AppMode::Extended {
            o.insert("label".into(), json!(al.label));
            o.insert("popularity".into(), json!(al.popularity));
        }
        let href = format!("{}/albums/{}/tracks", v.api, al.id);
        o.insert("tracks".into(), self.album_tracks_page(i, v, &href, 0, 50));
        Value::Object(o)
    }

    /// One page of an album's simplified tracks.
    pub fn album_tracks_page(
        &self,
        i: usize,
        v: View,
        href: &str,
        offset: usize,
        limit: usize,
    ) -> Value {
        let range = self.albums[i].tracks.clone();
        let items: Vec<Value> = range
            .clone()
            .skip(offset)
            .take(limit)
            .map(|t| self.track_simplified(t, v))
            .collect();
        paging(href, &[], items, offset, limit, range.len())
    }

    pub fn track_simplified(&self, i: usize, v: View) -> Value {
        let t = &self.tracks[i];
        let mut o = Map::new();
        o.insert(
            "artists".into(),
            t.artists
                .iter()
                .map(|&a| self.artist_simplified(a, v))
                .collect(),
        );
        self.markets(&mut o, &self.albums[t.album].markets, v, true);
        o.insert("disc_number".into(), json!(t.disc_number));
        o.insert("duration_ms".into(), json!(t.duration_ms));
        o.insert("explicit".into(), json!(t.explicit));
        o.insert(
            "external_urls".into(),
            json!({"spotify": format!("https://open.spotify.com/track/{}", t.id)}),
        );
        o.insert("href".into(), json!(format!("{}/tracks/{}", v.api, t.id)));
        o.insert("id".into(), json!(t.id));
        o.insert("name".into(), json!(t.name));
        o.insert(
            "preview_url".into(),
            if t.has_preview {
                json!(format!("https://p.scdn.co/mp3-preview/{}", t.id))
            } else {
                Value::Null
            },
        );
        o.insert("track_number".into(), json!(t.track_number));
        o.insert("type".into(), json!("track"));
        o.insert("uri".into(), json!(format!("spotify:track:{}", t.id)));
        Value::Object(o)
    }

    pub fn track_full(&self, i: usize, v: View) -> Value {
        let t = &self.tracks[i];
        let mut o = object(self.track_simplified(i, v));
        o.insert("album".into(), self.album_simplified(t.album, v, None));
        o.insert("external_ids".into(), json!({"isrc": t.isrc}));
        if v.mode == AppMode::Extended {
            o.insert("popularity".into(), json!(t.popularity));
        }
        Value::Object(o)
    }

    /// `None` for tracks Spotify has no analysis of.
    pub fn audio_features(&self, i: usize, v: View) -> Option<Value> {
        let t = &self.tracks[i];
        let f = t.features?;
        Some(json!({
            "danceability": f.danceability,
            "energy": f.energy,
            "key": f.key,
            "loudness": f.loudness,
            "mode": f.mode,
            "speechiness": f.speechiness,
            "acousticness": f.acousticness,
            "instrumentalness": f.instrumentalness,
            "liveness": f.liveness,
            "valence": f.valence,
            "tempo": f.tempo,
            "type": "audio_features",
            "id": t.id,
            "uri": format!("spotify:track:{}", t.id),
            "track_href": format!("{}/tracks/{}", v.api, t.id),
            "analysis_url": format!("{}/audio-analysis/{}", v.api, t.id),
            "duration_ms": t.duration_ms,
            "time_signature": f.time_signature,
        }))
    }

    /// `available_markets` without `?market=` (Extended mode only);
    /// `is_playable` on tracks with it, as the recorded responses show.
    fn markets(&self, o: &mut Map<String, Value>, markets: &[&str], v: View, track: bool) {
        match (v.mode, v.market) {
            (_, Some(market)) => {
                if track {
                    o.insert("is_playable".into(), json!(markets.contains(&market)));
                }
            }
            (AppMode::Extended, None) => {
                o.insert("available_markets".into(), json!(markets));
            }
            (AppMode::Development, None) => {}
        }
    }
}

/// A Spotify paging object. `query` holds the parameters other than
/// `offset` and `limit`, repeated in `href`, `next` and `previous`.
pub fn paging(
    base: &str,
    query: &[(&str, String)],
    items: Vec<Value>,
    offset: usize,
    limit: usize,
    total: usize,
) -> Value {
    let link = |offset: usize| {
        let mut url = url::Url::parse(base).expect("simulator URLs parse");
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("offset", &offset.to_string());
            q.append_pair("limit", &limit.to_string());
            for (k, v) in query {
                q.append_pair(k, v);
            }
        }
        url.to_string()
    };
    json!({
        "href": link(offset),
        "items": items,
        "limit": limit,
        "next": if offset + limit < total { json!(link(offset + limit)) } else { Value::Null },
        "offset": offset,
        "previous": if offset > 0 { json!(link(offset.saturating_sub(limit))) } else { Value::Null },
        "total": total,
    })
}

fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(o) => o,
        _ => unreachable!("renderers build objects"),
    }
}

fn images(id: &str, count: usize, sizes: [u32; 3]) -> Value {
    sizes
        .iter()
        .take(count)
        .enumerate()
        .map(|(n, &size)| {
            json!({
                "height": size,
                "url": format!("https://i.scdn.co/image/{id}{n}"),
                "width": size,
            })
        })
        .collect()
}

fn spotify_id(rng: &mut Rng) -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    (0..22)
        .map(|_| char::from(ALPHABET[rng.below(62) as usize]))
        .collect()
}

fn isrc(rng: &mut Rng, year: u64) -> String {
    const COUNTRIES: &[&str] = &["US", "GB", "DE", "SE", "JP", "BR", "FR", "NG", "KR"];
    let registrant: String = (0..3)
        .map(|_| char::from(b'A' + rng.below(26) as u8))
        .collect();
    format!(
        "{}{registrant}{:02}{:05}",
        rng.pick(COUNTRIES),
        year % 100,
        rng.below(100_000)
    )
}

fn title(rng: &mut Rng) -> String {
    match rng.below(3) {
        0 => rng.pick(WORDS).to_string(),
        1 => format!("{} {}", rng.pick(WORDS), rng.pick(WORDS)),
        _ => format!("{} of the {}", rng.pick(WORDS), rng.pick(WORDS)),
    }
}

fn collaborator_name(rng: &mut Rng) -> String {
    match rng.below(4) {
        0 => format!("DJ {}", rng.pick(LAST)),
        _ => format!("{} {}", rng.pick(FIRST), rng.pick(LAST)),
    }
}

fn collaborator_count(rng: &mut Rng) -> u64 {
    if rng.chance(0.35) { rng.range(1, 2) } else { 0 }
}

/// Albums per listed artist: mostly a handful, a long tail into the hundreds.
fn album_count(rng: &mut Rng) -> usize {
    let u = rng.unit();
    (if u < 0.08 {
        rng.range(1, 2)
    } else if u < 0.88 {
        rng.range(3, 20)
    } else if u < 0.98 {
        rng.range(21, 60)
    } else {
        rng.range(100, 250)
    }) as usize
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn dedup(mut v: Vec<&'static str>) -> Vec<&'static str> {
    let mut seen = Vec::new();
    v.retain(|g| {
        let new = !seen.contains(g);
        seen.push(*g);
        new
    });
    v
}
