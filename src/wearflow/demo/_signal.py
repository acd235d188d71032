"""Rendering a synthetic wrist signal: arm orientation, movement, temperature, noise.

Slow parts of the signal (orientation, linear acceleration, temperature) are
built on a coarse control grid and linearly interpolated to the sampling
rate; only sensor noise and walking are computed per sample. A 2-day 50 Hz
recording takes about 0.6 s.
"""

from __future__ import annotations

import math

import numpy as np

from wearflow.demo._timeline import Behaviour, Plan, Side
from wearflow.recording import FloatArray

CTRL_HZ = 5.0  # the control grid
WANDER_HZ = 0.5  # knots of the small arm wander while awake
_G_M_S2 = 9.81

# Sensor noise (g), Gaussian; the device then quantises to 1/256 g.
_SENSOR_NOISE_G = 0.0025


def posture_knots(
    rng: np.random.Generator,
    plan: Plan,
    runs: list[tuple[int, int, int]],
    t_ctrl: FloatArray,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Knot times and arm pitch/roll (degrees) of the held postures.

    Pitch is the angle of the device x axis (along the forearm, toward the
    hand) above the horizontal; roll turns the device about that axis, 0 with
    the face up. Roll accumulates instead of wrapping, so that interpolating
    between knots never spins the arm the long way round.
    """
    times: list[FloatArray] = []
    pitch: list[FloatArray] = []
    roll: list[FloatArray] = []
    roll_now = 0.0
    changes = np.asarray(plan.posture_changes_s)
    for code, i0, i1 in runs:
        t0 = float(t_ctrl[i0])
        t1 = float(t_ctrl[i1 - 1]) + 1.0 / CTRL_HZ
        if code in (Behaviour.AWAKE, Behaviour.RESTLESS):
            # holds of seconds to minutes joined by quick re-orientations
            k = int((t1 - t0) / 8.0) + 8
            holds = np.clip(rng.exponential(25.0, k), 3.0, 180.0)
            moves = rng.uniform(0.8, 3.0, k)
            p = np.clip(rng.normal(-10.0, 35.0, k), -85.0, 85.0)
            r = roll_now + np.cumsum(rng.normal(0.0, 60.0, k))
            if code == Behaviour.RESTLESS:
                holds = holds / 4.0
                p = np.clip(rng.normal(0.0, 25.0, k), -70.0, 70.0)
            arrive = t0 + np.cumsum(moves + holds) - holds  # end of each move
            leave = np.minimum(arrive + holds, t1)
            keep = arrive < t1
            tt = np.column_stack((arrive, leave))[keep].ravel()
            pp = np.repeat(p[keep], 2)
            rr = np.repeat(r[keep], 2)
        elif code == Behaviour.SLEEP:
            inside = changes[(changes > t0) & (changes < t1)]
            k = inside.size + 1
            p = np.clip(rng.normal(0.0, 25.0, k), -70.0, 70.0)
            turn = rng.uniform(40.0, 180.0, k) * rng.choice((-1.0, 1.0), k)
            r = roll_now + np.cumsum(turn)
            settle = rng.uniform(2.0, 5.0, k)  # seconds to turn over
            arrive = np.concatenate(([t0], inside)) + settle
            leave = np.concatenate((inside, [t1]))
            tt = np.column_stack((arrive, leave)).ravel()
            pp = np.repeat(p, 2)
            rr = np.repeat(r, 2)
        elif code == Behaviour.NON_WEAR:
            # flat on a table, face up (mostly) or down, within a degree of level
            face_down = rng.random() < 0.2
            target = 180.0 if face_down else 0.0
            roll_flat = roll_now + ((target - roll_now + 180.0) % 360.0 - 180.0)
            tt = np.array([t0 + rng.uniform(2.0, 5.0), t1])
            pp = np.full(2, rng.normal(0.0, 0.5))
            rr = np.full(2, roll_flat + rng.normal(0.0, 0.5))
        else:  # walking: the arm hangs; the swing is added per sample
            tt = np.array([t0 + rng.uniform(1.0, 3.0), t1])
            pp = np.full(2, rng.uniform(-75.0, -60.0))
            rr = np.full(2, roll_now + ((90.0 - roll_now + 180.0) % 360.0 - 180.0))
            rr += rng.normal(0.0, 15.0)
        if tt.size:
            times.append(np.maximum.accumulate(np.clip(tt, t0, t1)))
            pitch.append(pp)
            roll.append(rr)
            roll_now = float(rr[-1])
    return np.concatenate(times), np.concatenate(pitch), np.concatenate(roll)


def gravity(pitch_deg: FloatArray, roll_deg: FloatArray) -> FloatArray:
    """Unit vector the accelerometer reads at rest, shape (n, 3)."""
    p = np.deg2rad(pitch_deg)
    r = np.deg2rad(roll_deg)
    cp = np.cos(p)
    return np.column_stack((np.sin(p), cp * np.sin(r), cp * np.cos(r)))


def walking_delta(
    rng: np.random.Generator,
    t: FloatArray,
    step_hz: float,
    pitch_deg: float,
    roll_deg: float,
) -> FloatArray:
    """Acceleration of a swinging arm minus the hanging arm at rest, shape (n, 3), g.

    The forearm swings like a pendulum at the stride frequency (half the step
    frequency); the wrist, about 0.65 m from the shoulder, feels tangential and
    centripetal acceleration, and the body's vertical bounce and heel strikes
    at the step frequency arrive along gravity.
    """
    n = t.size
    stride_hz = step_hz / 2.0
    w = 2.0 * np.pi * stride_hz
    swing = np.deg2rad(rng.uniform(16.0, 24.0))
    arm_m = rng.uniform(0.6, 0.7)
    bounce_g = rng.uniform(0.1, 0.16)
    strike_g = rng.uniform(0.15, 0.3)
    # slow drift of cadence (about 2 %) and swing amplitude (10 %)
    tt = t - t[0]
    phase = w * tt + 0.3 * np.sin(2.0 * np.pi * tt / rng.uniform(40.0, 90.0)) + rng.uniform(0, 6.3)
    amp = swing * (1.0 + 0.1 * np.sin(2.0 * np.pi * tt / rng.uniform(30.0, 70.0)))
    ramp = np.minimum(1.0, np.minimum(tt, tt[-1] - tt) / 3.0) if n > 1 else np.zeros(n)
    amp *= ramp
    angle = amp * np.sin(phase)
    omega = amp * w * np.cos(phase)
    alpha = -amp * w * w * np.sin(phase)

    p0 = np.deg2rad(pitch_deg)
    r = np.deg2rad(roll_deg)
    p = p0 + angle
    cp = np.cos(p)
    g = np.column_stack((np.sin(p), cp * np.sin(r), cp * np.cos(r)))
    rest = np.array([np.sin(p0), np.cos(p0) * np.sin(r), np.cos(p0) * np.cos(r)])
    # the swing plane holds the forearm (x) and gravity; the wrist moves in it,
    # perpendicular to the forearm
    tangential = np.array([0.0, np.sin(r), np.cos(r)])
    step_phase = 2.0 * phase + rng.uniform(0, 6.3)
    vertical = bounce_g * np.sin(step_phase) + strike_g * np.maximum(np.sin(step_phase), 0.0) ** 8
    out: FloatArray = g * (1.0 + vertical * ramp)[:, None] - rest
    out += (arm_m * alpha / _G_M_S2)[:, None] * tangential
    out[:, 0] -= arm_m * omega * omega / _G_M_S2  # centripetal, toward the shoulder
    return out


def smooth_noise(
    rng: np.random.Generator, t_ctrl: FloatArray, rate_hz: float, columns: int = 1
) -> FloatArray:
    """Unit-variance noise with knots at ``rate_hz``, linearly interpolated, shape (n, columns)."""
    n_knots = math.ceil((t_ctrl[-1] - t_ctrl[0]) * rate_hz) + 2
    kt = t_ctrl[0] + np.arange(n_knots) / rate_hz
    kv = rng.standard_normal((n_knots, columns))
    return np.column_stack([np.interp(t_ctrl, kt, kv[:, j]) for j in range(columns)])


def near_body_temperature(
    rng: np.random.Generator,
    runs: list[tuple[int, int, int]],
    t_ctrl: FloatArray,
) -> FloatArray:
    """Near-body temperature (degC): first-order approach to each state's target."""
    skin_day = rng.uniform(31.5, 32.5)
    skin_night = rng.uniform(33.5, 34.3)
    room = rng.uniform(22.0, 24.0)
    tau_off_s = 60.0 * rng.uniform(10.0, 16.0)
    tau_on_s = 60.0 * rng.uniform(6.0, 10.0)
    out = np.empty_like(t_ctrl)
    temp_now = skin_day
    for code, i0, i1 in runs:
        if code == Behaviour.NON_WEAR:
            target, tau_s = room, tau_off_s
        elif code in (Behaviour.SLEEP, Behaviour.RESTLESS):
            target, tau_s = skin_night, 20.0 * 60.0
        else:
            target, tau_s = skin_day, tau_on_s if temp_now < skin_day - 3.0 else 25.0 * 60.0
        dt = t_ctrl[i0:i1] - t_ctrl[i0]
        out[i0:i1] = target + (temp_now - target) * np.exp(-dt / tau_s)
        temp_now = float(out[i1 - 1])
    # slow drift (room and skin both wander), plus sensor noise
    out += 0.25 * smooth_noise(rng, t_ctrl, 1.0 / 1200.0)[:, 0]
    out += 0.06 * smooth_noise(rng, t_ctrl, 1.0 / 180.0)[:, 0]
    out += rng.normal(0.0, 0.03, out.shape)
    return out


def mount_rotation(rng: np.random.Generator, side: Side) -> FloatArray:
    """Arm frame to device frame: a few degrees of misalignment; the right wrist mirrored."""
    a, b, c = np.deg2rad(rng.normal(0.0, 3.0, 3))
    rx = np.array([[1.0, 0.0, 0.0], [0.0, np.cos(a), -np.sin(a)], [0.0, np.sin(a), np.cos(a)]])
    ry = np.array([[np.cos(b), 0.0, np.sin(b)], [0.0, 1.0, 0.0], [-np.sin(b), 0.0, np.cos(b)]])
    rz = np.array([[np.cos(c), -np.sin(c), 0.0], [np.sin(c), np.cos(c), 0.0], [0.0, 0.0, 1.0]])
    mirror = np.diag([1.0, 1.0, 1.0]) if side == "left" else np.diag([-1.0, -1.0, 1.0])
    out: FloatArray = mirror @ rz @ ry @ rx
    return out


_CHUNK = 1 << 15  # samples per rendering step: the working set stays in cache
_NOISE_POOL = 1 << 18  # samples of Gaussian sensor noise drawn per recording


def render(
    rng: np.random.Generator,
    t: FloatArray,
    t_ctrl: FloatArray,
    g_ctrl: FloatArray,
    temp_ctrl: FloatArray,
) -> tuple[FloatArray, FloatArray]:
    """Interpolate the control grid to the sample times and add sensor noise.

    Works through the recording in fixed-size chunks (fixed, so the output
    depends only on the seed). Each chunk's noise is a window, at a random
    offset, of one pool of Gaussian noise: copying a window costs a fraction
    of drawing every value, and nothing downstream can tell the difference.
    """
    n = t.size
    accel = np.empty((n, 3), dtype=np.float64)
    temperature = np.empty(n, dtype=np.float64)
    pool = rng.standard_normal(3 * _NOISE_POOL)
    pool *= _SENSOR_NOISE_G
    for i0 in range(0, n, _CHUNK):
        i1 = min(i0 + _CHUNK, n)
        m = i1 - i0
        tc = t[i0:i1]
        c0 = max(int(np.searchsorted(t_ctrl, tc[0])) - 1, 0)
        c1 = int(np.searchsorted(t_ctrl, tc[-1])) + 1
        xc = t_ctrl[c0:c1]
        block = accel[i0:i1]
        offset = int(rng.integers(0, pool.size - 3 * m + 1))
        block[...] = pool[offset : offset + 3 * m].reshape(m, 3)
        for j in range(3):
            block[:, j] += np.interp(tc, xc, g_ctrl[c0:c1, j])
        temperature[i0:i1] = np.interp(tc, xc, temp_ctrl[c0:c1])
    return accel, temperature


def rotate(v: FloatArray, rot: FloatArray) -> FloatArray:
    """``v @ rot.T`` for (n, 3) ``v``, elementwise: BLAS threads cost more than they save here."""
    out = np.empty_like(v)
    for i in range(3):
        np.multiply(v[:, 0], rot[i, 0], out=out[:, i])
        out[:, i] += v[:, 1] * rot[i, 1]
        out[:, i] += v[:, 2] * rot[i, 2]
    return out
