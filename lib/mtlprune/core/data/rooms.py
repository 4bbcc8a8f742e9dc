"""Offline generator of NYU-like indoor scenes, written in the NYU-v2 layout of MTAN/LibMTL.

Each sample is a procedurally built room (floor, walls, ceiling, furniture-like boxes, tables and chairs with legs,
cylinders, spheres, wall pictures, windows, a TV, books) seen from a random camera and **ray-cast**, so depth (z-buffer,
metres), surface normals (camera frame) and the 13-class NYU labels are exact per pixel. RGB comes from shading the
hit points (ambient + one point light with cast shadows), procedural textures evaluated in world coordinates, a random
exposure/white balance and sensor noise. Colours and textures are drawn from one distribution for every class, so a
colour never gives a class away; depth and normals can only be read from geometry and shading.

Conventions (identical to what the real-data loader expects, see `data/README.md`):
camera frame x right, y down, z forward; depth = z (0 marks invalid pixels); normals are unit vectors pointing towards
the camera, (0, 0, 0) where invalid; labels use the NYU-13 class order below, -1 = unlabelled.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

NYU13_CLASSES: tuple[str, ...] = (
    "bed", "books", "ceiling", "chair", "floor", "furniture", "objects",
    "picture", "sofa", "table", "tv", "wall", "window",
)
CLS = {name: i for i, name in enumerate(NYU13_CLASSES)}
IGNORE = -1
_EPS = 1e-4


@dataclass(frozen=True)
class SceneParams:
    """Knobs of the scene distribution (all part of the dataset identity)."""

    hfov_deg: float = 62.0  # Kinect v1 colour camera is about 62 degrees wide
    noise_std: float = 0.02  # sensor noise on [0, 1] RGB
    p_window_invalid: float = 0.5  # windows are glass: the depth sensor often fails there
    p_unlabelled: float = 0.04  # share of objects left unlabelled, as in real annotations
    hole_rate: float = 1.5  # mean number of random depth holes (sensor drop-outs) per image


# --------------------------------------------------------------------------------------------------------------------
# Scene description: flat arrays per primitive kind, so ray casting is vectorised over rays x primitives.
# --------------------------------------------------------------------------------------------------------------------
@dataclass
class _Scene:
    room: np.ndarray  # (2, 3) min / max corner of the room box
    room_mat: list[int]  # material per room face: [x-, x+, floor, ceiling, z-, z+]
    boxes: list[tuple[np.ndarray, np.ndarray, int, int]] = field(default_factory=list)  # (bmin, bmax, label, mat)
    spheres: list[tuple[np.ndarray, float, int, int]] = field(default_factory=list)  # (centre, radius, label, mat)
    cylinders: list[tuple[float, float, float, float, float, int, int]] = field(default_factory=list)
    # cylinders: (cx, cz, radius, y0, y1, label, mat), axis vertical
    materials: list[dict] = field(default_factory=list)


def _material(rng: np.random.Generator) -> dict:
    """One surface appearance; the same distribution for every class (colour must not give the class away)."""
    hsv_to_rgb = lambda h, s, v: np.clip(  # noqa: E731 - tiny local helper
        v * (1 - s + s * np.clip(np.abs(((h * 6 + np.array([0, 4, 2])) % 6) - 3) - 1, 0, 1)), 0, 1)
    c1 = hsv_to_rgb(rng.random(), rng.uniform(0.05, 0.7), rng.uniform(0.25, 0.95))
    c2 = np.clip(c1 * rng.uniform(0.5, 1.3) + rng.normal(0, 0.08, 3), 0, 1)
    direction = rng.normal(size=3)
    return {
        "c1": c1, "c2": c2,
        "kind": int(rng.integers(0, 5)),  # flat, stripes, checker, noise, grain
        "freq": float(rng.uniform(2.0, 14.0)),
        "dir": direction / np.linalg.norm(direction),
        "phases": rng.uniform(0, 2 * np.pi, 3),
    }


def _add_mat(scene: _Scene, rng: np.random.Generator) -> int:
    scene.materials.append(_material(rng))
    return len(scene.materials) - 1


def _maybe_unlabel(label: int, rng: np.random.Generator, params: SceneParams) -> int:
    return IGNORE if rng.random() < params.p_unlabelled else label


def _wall_box(room, wall: int, centre: float, width: float, depth: float, y0: float, y1: float, gap: float = 0.0):
    """Axis-aligned box standing against `wall` (0: x-, 1: x+, 2: z-, 3: z+), `depth` metres into the room."""
    lo, hi = room
    if wall in (0, 1):
        x0 = lo[0] + gap if wall == 0 else hi[0] - gap - depth
        return np.array([x0, y0, centre - width / 2]), np.array([x0 + depth, y1, centre + width / 2])
    z0 = lo[2] + gap if wall == 2 else hi[2] - gap - depth
    return np.array([centre - width / 2, y0, z0]), np.array([centre + width / 2, y1, z0 + depth])


def _wall_span(room, wall: int) -> tuple[float, float]:
    lo, hi = room
    return (lo[2], hi[2]) if wall in (0, 1) else (lo[0], hi[0])


def _build_scene(rng: np.random.Generator, params: SceneParams) -> tuple[_Scene, np.ndarray, np.ndarray]:
    """Sample a room, its contents and a camera (position, 3x3 rotation camera->world)."""
    size = np.array([rng.uniform(3.0, 6.5), rng.uniform(2.4, 3.2), rng.uniform(3.0, 6.5)])
    room = np.stack([np.zeros(3), size])
    wall_mat = None
    mats = []
    scene = _Scene(room=room, room_mat=[])
    for face in range(6):
        if face in (2, 3):  # floor and ceiling get their own material
            mats.append(_add_mat(scene, rng))
        else:  # walls often share one paint, sometimes an accent wall
            if wall_mat is None or rng.random() < 0.2:
                wall_mat = _add_mat(scene, rng)
            mats.append(wall_mat)
    scene.room_mat = mats
    H = size[1]

    # Camera first: near one wall, looking into the room, so objects can be rejected if they would contain it.
    cam_wall = int(rng.integers(0, 4))
    inward = {0: np.array([1, 0, 0]), 1: np.array([-1, 0, 0]), 2: np.array([0, 0, 1]), 3: np.array([0, 0, -1])}
    a, b = _wall_span(room, cam_wall)
    along = rng.uniform(a + 0.6, b - 0.6)
    off = rng.uniform(0.3, 0.9)
    cam = np.zeros(3)
    if cam_wall in (0, 1):
        cam[0] = off if cam_wall == 0 else size[0] - off
        cam[2] = along
    else:
        cam[2] = off if cam_wall == 2 else size[2] - off
        cam[0] = along
    cam[1] = rng.uniform(1.0, 1.7)
    base_yaw = np.arctan2(inward[cam_wall][0], inward[cam_wall][2])
    yaw = base_yaw + rng.uniform(-0.7, 0.7)
    pitch = -rng.uniform(0.05, 0.45)
    roll = rng.normal(0, 0.04)
    f = np.array([np.cos(pitch) * np.sin(yaw), np.sin(pitch), np.cos(pitch) * np.cos(yaw)])
    right = np.cross(f, [0.0, 1.0, 0.0])
    right /= np.linalg.norm(right)
    down = np.cross(f, right)
    c, s = np.cos(roll), np.sin(roll)
    right, down = c * right + s * down, -s * right + c * down
    rot = np.stack([right, down, f], axis=1)

    def add_box(bmin, bmax, label, mat=None):
        lo, hi = np.minimum(bmin, bmax), np.maximum(bmin, bmax)
        if np.all(cam > lo - 0.25) and np.all(cam < hi + 0.25):
            return False  # would swallow the camera
        scene.boxes.append((lo, hi, _maybe_unlabel(label, rng, params), _add_mat(scene, rng) if mat is None else mat))
        return True

    tops: list[tuple[np.ndarray, np.ndarray]] = []  # surfaces where books / objects can sit

    # Furniture against walls: cabinets, shelves, beds, sofas.
    for _ in range(int(rng.integers(1, 4))):
        wall = int(rng.integers(0, 4))
        a, b = _wall_span(room, wall)
        w = rng.uniform(0.6, 1.8)
        centre = rng.uniform(a + w / 2, max(a + w / 2 + 1e-3, b - w / 2))
        kind = rng.choice(["furniture", "bed", "sofa"], p=[0.6, 0.2, 0.2])
        if kind == "furniture":
            top = rng.uniform(0.5, 2.1)
            bmin, bmax = _wall_box(room, wall, centre, w, rng.uniform(0.35, 0.6), 0.0, top)
            if add_box(bmin, bmax, CLS["furniture"]):
                tops.append((bmin, bmax))
        elif kind == "bed":
            width = rng.uniform(1.0, 1.8)
            bmin, bmax = _wall_box(room, wall, centre, width, rng.uniform(1.8, 2.1), 0.0, rng.uniform(0.4, 0.6))
            mat = _add_mat(scene, rng)
            add_box(bmin, bmax, CLS["bed"], mat)
            hb_min, hb_max = _wall_box(room, wall, centre, width, 0.08, 0.0, rng.uniform(0.8, 1.2))
            add_box(hb_min, hb_max, CLS["bed"], mat)
        else:
            mat = _add_mat(scene, rng)
            depth = rng.uniform(0.8, 1.0)
            bmin, bmax = _wall_box(room, wall, centre, w + 0.4, depth, 0.0, rng.uniform(0.4, 0.5))
            add_box(bmin, bmax, CLS["sofa"], mat)
            bmin, bmax = _wall_box(room, wall, centre, w + 0.4, 0.25, 0.0, rng.uniform(0.75, 0.95))
            add_box(bmin, bmax, CLS["sofa"], mat)

    # Free-standing tables with legs, and chairs around them.
    for _ in range(int(rng.integers(0, 3))):
        cx, cz = rng.uniform(0.8, size[0] - 0.8), rng.uniform(0.8, size[2] - 0.8)
        hx, hz, top = rng.uniform(0.3, 0.8), rng.uniform(0.3, 0.6), rng.uniform(0.45, 0.8)
        mat = _add_mat(scene, rng)
        tmin, tmax = np.array([cx - hx, top - 0.04, cz - hz]), np.array([cx + hx, top, cz + hz])
        if not add_box(tmin, tmax, CLS["table"], mat):
            continue
        tops.append((tmin, tmax))
        for sx in (-1, 1):
            for sz in (-1, 1):
                lx, lz = cx + sx * (hx - 0.05), cz + sz * (hz - 0.05)
                add_box(np.array([lx - 0.03, 0, lz - 0.03]), np.array([lx + 0.03, top - 0.04, lz + 0.03]),
                        CLS["table"], mat)
        for _ in range(int(rng.integers(0, 4))):
            ang = rng.uniform(0, 2 * np.pi)
            px, pz = cx + np.cos(ang) * (hx + 0.35), cz + np.sin(ang) * (hz + 0.35)
            seat = rng.uniform(0.4, 0.5)
            cmat = _add_mat(scene, rng)
            add_box(np.array([px - 0.22, seat - 0.05, pz - 0.22]), np.array([px + 0.22, seat, pz + 0.22]),
                    CLS["chair"], cmat)
            # backrest on the side away from the table
            bx, bz = np.cos(ang), np.sin(ang)
            if abs(bx) > abs(bz):
                x0 = px + np.sign(bx) * 0.2
                add_box(np.array([x0 - 0.03, seat, pz - 0.22]), np.array([x0 + 0.03, seat + 0.45, pz + 0.22]),
                        CLS["chair"], cmat)
            else:
                z0 = pz + np.sign(bz) * 0.2
                add_box(np.array([px - 0.22, seat, z0 - 0.03]), np.array([px + 0.22, seat + 0.45, z0 + 0.03]),
                        CLS["chair"], cmat)
            for sx in (-1, 1):
                for sz in (-1, 1):
                    add_box(np.array([px + sx * 0.18 - 0.02, 0, pz + sz * 0.18 - 0.02]),
                            np.array([px + sx * 0.18 + 0.02, seat - 0.05, pz + sz * 0.18 + 0.02]),
                            CLS["chair"], cmat)

    # Flat things on walls: pictures, windows, a TV.
    for label, count, thick in (("picture", rng.integers(0, 4), 0.03), ("window", rng.integers(0, 3), 0.02),
                                ("tv", rng.integers(0, 2), 0.08)):
        for _ in range(int(count)):
            wall = int(rng.integers(0, 4))
            a, b = _wall_span(room, wall)
            w = rng.uniform(0.4, 1.4)
            if b - a < w + 0.4:
                continue
            centre = rng.uniform(a + w / 2 + 0.1, b - w / 2 - 0.1)
            y0 = rng.uniform(0.8, 1.4) if label != "window" else rng.uniform(0.7, 1.1)
            hgt = rng.uniform(0.3, 0.9) if label != "window" else rng.uniform(0.8, min(1.5, H - y0 - 0.2))
            bmin, bmax = _wall_box(room, wall, centre, w, thick, y0, y0 + hgt)
            add_box(bmin, bmax, CLS[label])

    # Books on top surfaces, objects (spheres, cylinders, small boxes) on the floor or on tops.
    for bmin, bmax in tops:
        for _ in range(int(rng.integers(0, 5))):
            bw, bh, bd = rng.uniform(0.03, 0.08), rng.uniform(0.15, 0.3), rng.uniform(0.12, 0.22)
            x = rng.uniform(bmin[0] + 0.05, max(bmin[0] + 0.06, bmax[0] - 0.1))
            z = rng.uniform(bmin[2] + 0.05, max(bmin[2] + 0.06, bmax[2] - 0.1))
            add_box(np.array([x, bmax[1], z]), np.array([x + bw, bmax[1] + bh, z + bd]), CLS["books"])
    for _ in range(int(rng.integers(1, 6))):
        if tops and rng.random() < 0.5:
            bmin, bmax = tops[int(rng.integers(0, len(tops)))]
            base = np.array([rng.uniform(bmin[0], bmax[0]), bmax[1], rng.uniform(bmin[2], bmax[2])])
        else:
            base = np.array([rng.uniform(0.3, size[0] - 0.3), 0.0, rng.uniform(0.3, size[2] - 0.3)])
        r = rng.uniform(0.06, 0.3)
        if np.linalg.norm((base - cam)[[0, 2]]) < r + 0.35:
            continue
        label = _maybe_unlabel(CLS["objects"], rng, params)
        kind = rng.integers(0, 3)
        if kind == 0:
            scene.spheres.append((base + np.array([0, r, 0]), r, label, _add_mat(scene, rng)))
        elif kind == 1:
            scene.cylinders.append((base[0], base[2], r, base[1], base[1] + rng.uniform(0.1, 0.9), label,
                                    _add_mat(scene, rng)))
        else:
            add_box(base - np.array([r, 0, r]), base + np.array([r, 2 * r * rng.uniform(0.5, 1.5), r]),
                    CLS["objects"])
    return scene, cam, rot


# --------------------------------------------------------------------------------------------------------------------
# Ray casting
# --------------------------------------------------------------------------------------------------------------------
def _safe(d: np.ndarray) -> np.ndarray:
    return np.where(np.abs(d) < 1e-12, 1e-12, d)


def _cast_objects(o: np.ndarray, d: np.ndarray, scene: _Scene):
    """Nearest hit of rays (o, d: (P, 3)) against every object; returns t, normal, label, material (inf if none)."""
    P = d.shape[0]
    best_t = np.full(P, np.inf)
    best_n = np.zeros((P, 3))
    best_l = np.full(P, IGNORE, dtype=np.int64)
    best_m = np.zeros(P, dtype=np.int64)

    rows = np.arange(P)

    def take(t, normal_of, labels, mats):
        """Keep, per ray, the nearest of K candidates (t: (P, K)); normals are computed for the winners only."""
        if t.shape[1] == 0:
            return
        k = np.argmin(t, axis=1)
        tk = t[rows, k]
        better = tk < best_t
        best_t[better] = tk[better]
        best_n[better] = normal_of(k)[better]
        best_l[better] = np.asarray(labels)[k][better]
        best_m[better] = np.asarray(mats)[k][better]

    if scene.boxes:
        bmin = np.stack([b[0] for b in scene.boxes])
        bmax = np.stack([b[1] for b in scene.boxes])
        inv = (1.0 / _safe(d)).astype(np.float32)
        oo = o.astype(np.float32)
        # Per-axis slabs as (P, B) arrays: reducing over a length-3 trailing axis is several times slower.
        lo_ax, hi_ax = [], []
        for ax in range(3):
            a1 = (bmin[None, :, ax].astype(np.float32) - oo[:, ax, None]) * inv[:, ax, None]
            a2 = (bmax[None, :, ax].astype(np.float32) - oo[:, ax, None]) * inv[:, ax, None]
            lo_ax.append(np.minimum(a1, a2))
            hi_ax.append(np.maximum(a1, a2))
        tnear = np.maximum(np.maximum(lo_ax[0], lo_ax[1]), lo_ax[2])
        tfar = np.minimum(np.minimum(hi_ax[0], hi_ax[1]), hi_ax[2])
        t = np.where((tfar >= tnear) & (tnear > _EPS), tnear, np.inf).astype(np.float64)

        def box_normal(k):
            axis = np.stack([la[rows, k] for la in lo_ax], -1).argmax(-1)  # last slab entered = face hit
            n = np.zeros((P, 3))
            n[rows, axis] = -np.sign(d[rows, axis])
            return n

        take(t, box_normal, [b[2] for b in scene.boxes], [b[3] for b in scene.boxes])

    if scene.spheres:
        c = np.stack([s[0] for s in scene.spheres])
        r = np.array([s[1] for s in scene.spheres])
        oc = o[:, None] - c[None]
        a = (d * d).sum(-1)[:, None]
        b = 2 * (oc * d[:, None]).sum(-1)
        cc = (oc * oc).sum(-1) - r[None] ** 2
        disc = b * b - 4 * a * cc
        sq = np.sqrt(np.maximum(disc, 0))
        t = (-b - sq) / (2 * a)
        t = np.where((disc >= 0) & (t > _EPS), t, np.inf)

        def sphere_normal(k):
            tk = t[rows, k]
            p = o + np.where(np.isfinite(tk), tk, 0)[:, None] * d
            return (p - c[k]) / r[k][:, None]

        take(t, sphere_normal, [s[2] for s in scene.spheres], [s[3] for s in scene.spheres])

    if scene.cylinders:
        cyl = np.array([cy[:5] for cy in scene.cylinders])
        cx, cz, r, y0, y1 = (cyl[:, i][None] for i in range(5))
        ox, oy, oz = (o[:, i][:, None] for i in range(3))
        dx, dy, dz = (d[:, i][:, None] for i in range(3))
        a = np.maximum(dx * dx + dz * dz, 1e-12)
        b = 2 * ((ox - cx) * dx + (oz - cz) * dz)
        cc = (ox - cx) ** 2 + (oz - cz) ** 2 - r ** 2
        disc = b * b - 4 * a * cc
        t_side = (-b - np.sqrt(np.maximum(disc, 0))) / (2 * a)
        y_side = oy + t_side * dy
        t_side = np.where((disc >= 0) & (t_side > _EPS) & (y_side >= y0) & (y_side <= y1), t_side, np.inf)
        dys = _safe(dy)
        caps = []
        for yc, sign in ((y1, 1.0), (y0, -1.0)):
            tc = (yc - oy) / dys
            inside = (ox + tc * dx - cx) ** 2 + (oz + tc * dz - cz) ** 2 <= r ** 2
            caps.append(np.where(inside & (tc > _EPS) & (np.sign(-dy) == sign), tc, np.inf))
        t_all = np.stack([t_side, caps[0], caps[1]], -1)  # (P, C, 3)
        which = t_all.argmin(-1)
        t = t_all.min(-1)
        px = ox + np.where(np.isfinite(t), t, 0) * dx
        pz = oz + np.where(np.isfinite(t), t, 0) * dz
        def cylinder_normal(k):
            w, rk = which[rows, k], r[0, k]
            n = np.zeros((P, 3))
            n[:, 0] = np.where(w == 0, (px[rows, k] - cx[0, k]) / rk, 0)
            n[:, 2] = np.where(w == 0, (pz[rows, k] - cz[0, k]) / rk, 0)
            n[:, 1] = np.where(w == 1, 1.0, np.where(w == 2, -1.0, 0.0))
            return n

        take(t, cylinder_normal, [cy[5] for cy in scene.cylinders], [cy[6] for cy in scene.cylinders])
    return best_t, best_n, best_l, best_m


def _cast_room(o: np.ndarray, d: np.ndarray, scene: _Scene):
    """Exit point of rays from inside the room box: walls, floor or ceiling."""
    lo, hi = scene.room
    inv = 1.0 / _safe(d)
    t1, t2 = (lo - o) * inv, (hi - o) * inv
    thi = np.maximum(t1, t2)
    axis = thi.argmin(-1)
    t = thi.min(-1)
    sgn = np.sign(d[np.arange(len(d)), axis])
    n = np.zeros_like(d)
    n[np.arange(len(d)), axis] = -sgn
    face = axis * 2 + (sgn > 0)  # 0 x-, 1 x+, 2 y- (floor), 3 y+ (ceiling), 4 z-, 5 z+
    label = np.where(face == 2, CLS["floor"], np.where(face == 3, CLS["ceiling"], CLS["wall"]))
    mats = np.asarray(scene.room_mat)[face]
    return t, n, label, mats


def _texture(p: np.ndarray, mat_ids: np.ndarray, scene: _Scene) -> np.ndarray:
    """Albedo at world points p (P, 3) from each point's procedural material."""
    albedo = np.zeros_like(p)
    for m in np.unique(mat_ids):
        sel = mat_ids == m
        mat = scene.materials[m]
        q = p[sel]
        f = mat["freq"]
        if mat["kind"] == 0:
            w = np.zeros(len(q))
        elif mat["kind"] == 1:
            w = (np.sin(f * q @ mat["dir"] + mat["phases"][0]) > 0).astype(float)
        elif mat["kind"] == 2:
            w = (np.floor(f * 0.3 * q).sum(-1) % 2).astype(float)
        elif mat["kind"] == 3:
            w = 0.5 + 0.5 * np.sin(f * q[:, 0] + mat["phases"][0]) * np.sin(f * 1.3 * q[:, 1] + mat["phases"][1]) \
                * np.sin(f * 0.7 * q[:, 2] + mat["phases"][2])
        else:
            g = q @ mat["dir"]
            w = 0.5 + 0.5 * np.sin(f * 2 * g + 2.5 * np.sin(f * 0.5 * q[:, 1] + mat["phases"][1]))
        albedo[sel] = mat["c1"] * (1 - w[:, None]) + mat["c2"] * w[:, None]
    return albedo


def render_scene(rng: np.random.Generator, height: int, width: int, params: SceneParams = SceneParams()):
    """Render one random scene. Returns image (H, W, 3) in [0, 1], label (H, W), depth (H, W, 1), normal (H, W, 3)."""
    scene, cam, rot = _build_scene(rng, params)
    fx = (width / 2) / np.tan(np.radians(params.hfov_deg) / 2)
    u, v = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
    dirs_cam = np.stack([(u - width / 2) / fx, (v - height / 2) / fx, np.ones_like(u)], -1).reshape(-1, 3)
    d = dirs_cam @ rot.T  # z component in the camera frame is 1, so t is the z-depth
    o = np.broadcast_to(cam, d.shape)

    t_room, n_room, l_room, m_room = _cast_room(o, d, scene)
    t_obj, n_obj, l_obj, m_obj = _cast_objects(o, d, scene)
    obj = t_obj < t_room
    t = np.where(obj, t_obj, t_room)
    n_world = np.where(obj[:, None], n_obj, n_room)
    label = np.where(obj, l_obj, l_room)
    mat = np.where(obj, m_obj, m_room)
    p = o + t[:, None] * d

    # Shading: ambient + one ceiling light with cast shadows + a little specular-free falloff.
    lo, hi = scene.room
    light = np.array([rng.uniform(lo[0] + 0.5, hi[0] - 0.5), hi[1] - 0.05, rng.uniform(lo[2] + 0.5, hi[2] - 0.5)])
    to_light = light - p
    dist = np.linalg.norm(to_light, axis=-1, keepdims=True)
    ldir = to_light / dist
    lambert = np.clip((n_world * ldir).sum(-1), 0, 1)
    t_shadow, *_ = _cast_objects(p + n_world * 1e-3, to_light, scene)  # t in units of to_light: < 1 means blocked
    visible = (t_shadow >= 1.0).astype(float)
    intensity = rng.uniform(2.0, 4.0)
    shade = rng.uniform(0.15, 0.35) + intensity * lambert * visible / (1.0 + dist[:, 0] ** 2)
    rgb = _texture(p, mat, scene) * shade[:, None]
    rgb = rgb * rng.uniform(0.8, 1.2, 3) * rng.uniform(0.7, 1.3)  # white balance and exposure
    rgb = np.clip(rgb, 0, 1) ** (1 / 1.6)
    rgb = np.clip(rgb + rng.normal(0, params.noise_std, rgb.shape), 0, 1)

    n_cam = n_world @ rot  # world -> camera frame (rot is orthonormal)
    depth = t.copy()
    invalid = np.zeros_like(t, dtype=bool)
    if rng.random() < params.p_window_invalid:
        invalid |= label == CLS["window"]
    for _ in range(int(rng.poisson(params.hole_rate))):  # sensor drop-outs: small random ellipses
        cy, cx = rng.uniform(0, height), rng.uniform(0, width)
        ry, rx = rng.uniform(1, height / 10 + 1), rng.uniform(1, width / 10 + 1)
        invalid |= (((v.reshape(-1) - cy) / ry) ** 2 + ((u.reshape(-1) - cx) / rx) ** 2) < 1
    depth[invalid] = 0.0
    n_cam[invalid] = 0.0
    return (
        rgb.reshape(height, width, 3).astype(np.float32),
        label.reshape(height, width).astype(np.float32),
        depth.reshape(height, width, 1).astype(np.float32),
        n_cam.reshape(height, width, 3).astype(np.float32),
    )
