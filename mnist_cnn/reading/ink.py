"""Find the ink on a page: a digit's strokes against the paper's own statistics.

A photo or scan of a digit is dark ink on light paper, unevenly lit, often with a
shadow, ruled or squared lines, dust, and the digit small somewhere in it. Ink is
strokes: thin against the paper at the scale of the page's stroke width, or long for their
thickness, where a shadow's patch is thick and about as long as thick (:func:`is_stroke`).
Each step here is public; :func:`find_digit` runs them in order, and :func:`map_ink`
stops before choosing a digit (for :mod:`mnist_cnn.reading.segmentation`, which reads a
whole number).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from mnist_cnn.errors import ImageError
from mnist_cnn.reading.grouping import column_neighbours, groups

__all__ = [
    "BLOB",
    "FLAT",
    "FRAME",
    "UNDERLINE",
    "WIDE",
    "FoundDigit",
    "InkMap",
    "Piece",
    "Polarity",
    "digit_ink",
    "estimate_background",
    "faint_ink",
    "faint_parts",
    "find_digit",
    "find_ink",
    "find_lines",
    "ink_bright",
    "ink_levels",
    "ink_mask",
    "ink_pieces",
    "is_frame",
    "is_line",
    "is_stroke",
    "is_underline",
    "map_ink",
    "noise_level",
    "one_over_another",
    "other_digits",
    "paper_margin",
    "polarity",
    "remove_background",
    "select_digit",
    "smooth_noise",
    "smoothing",
    "stand_out_locally",
    "stroke_width",
    "surrounded_by_paper",
    "thicker_strokes_width",
    "thickest_parts",
    "top_hat",
]

def estimate_background(image: np.ndarray, bright_ink: bool = True) -> np.ndarray:
    """A smooth quadratic surface through the background (uneven lighting, grey paper).

    The image is cut into blocks (about 16 across) whose medians are almost free of
    noise. With ``bright_ink`` the surface is fitted by least squares to the darker half
    of them, then again to every block not far above it, a few times; otherwise (ink of
    unknown polarity) to the middle half, then to every block not far from it.
    """
    h, w = image.shape
    size = max(2, min(h, w) // 16)
    bh, bw = h // size, w // size
    blocks = np.median(image[:bh * size, :bw * size].reshape(bh, size, bw, size)
                       .transpose(0, 2, 1, 3).reshape(bh, bw, -1), axis=2).ravel()
    rows, cols = np.mgrid[0:bh, 0:bw]
    r = ((rows + 0.5) * size / h - 0.5).ravel()
    c = ((cols + 0.5) * size / w - 0.5).ravel()
    basis = np.stack([np.ones_like(r), r, c, r * r, r * c, c * c], axis=1)
    q25, q50, q75 = np.percentile(blocks, [25, 50, 75])
    keep = blocks <= q50 if bright_ink else (blocks >= q25) & (blocks <= q75)
    for _ in range(4):
        coef = np.linalg.lstsq(basis[keep], blocks[keep], rcond=None)[0]
        residual = blocks - basis @ coef
        spread = noise_level(residual[keep])
        keep = (residual if bright_ink else np.abs(residual)) < 3 * spread + 0.01
    R, C = np.mgrid[0:h, 0:w].astype(np.float32)
    R, C = R / h - 0.5, C / w - 0.5
    return (coef[0] + coef[1] * R + coef[2] * C + coef[3] * R * R + coef[4] * R * C
            + coef[5] * C * C).astype(np.float32)


def ink_bright(grey: np.ndarray, dark: bool | None = None) -> np.ndarray:
    """The image with the ink bright: dark ink on light paper is inverted.

    Around a smooth surface fitted to the background without assuming a polarity
    (:func:`estimate_background`), the ink is the larger of the two extremes: darker
    than the paper by more than anything is lighter than it, or the reverse. A shadow,
    darker than the paper like a pen's ink, is wide and still further from the
    extremes than the ink. Ink never covers most of the picture: a choice that would
    make over half of it ink (more than half the picture over halfway from the paper to
    the extreme: a bold digit filling a small picture, which confuses the fit) is
    reversed (:func:`polarity`). ``dark`` is that polarity, if decided already.
    """
    if dark is None:
        dark = polarity(grey).dark
    return 1.0 - grey if dark else grey


def _border(image: np.ndarray) -> np.ndarray:
    """The pixels of a picture's outer rows and columns, each once."""
    return np.concatenate([image[0], image[-1], image[1:-1, 0], image[1:-1, -1]])


@dataclass(frozen=True)
class Polarity:
    """Which way the ink of a picture lies from its paper (:func:`polarity`).

    Attributes
    ----------
    dark : bool
        Whether the ink is darker than the paper.
    sure : bool
        Whether one extreme stands out of the fitted paper at least twice as far as the
        other, and the ink so found covers neither most of the picture nor most of its
        border. When the ink fills most of a picture (a digit cropped to its strokes),
        the fit runs between ink and paper, and the two extremes are alike or the paper
        stands out as if it were the ink.
    """

    dark: bool
    sure: bool


def polarity(grey: np.ndarray) -> Polarity:
    """Whether the ink of a greyscale picture is darker than its paper, as
    :func:`ink_bright` decides it, and whether that is sure."""
    from scipy import ndimage

    residual = ndimage.uniform_filter(grey - estimate_background(grey, bright_ink=False), 3)
    darkest, lightest = -float(residual.min()), float(residual.max())
    dark = darkest > lightest
    ink = -residual if dark else residual
    # Measured above the fitted paper, not in the raw picture: a strong lighting gradient
    # puts most of the paper on the ink's side of the raw picture's middle level.
    strong = ink > ink.max() / 2
    reversed_ = bool(strong.mean() > 0.5)
    # A picture's border is mostly paper, or the picture is cropped into its ink.
    sure = (max(darkest, lightest) >= _SURE * min(darkest, lightest)
            and not reversed_ and _border(strong).mean() <= 0.5)
    return Polarity(dark != reversed_, bool(sure))


#: The extreme that is the ink stands out at least this many times as far as the other
#: for the polarity to be sure (:func:`polarity`).
_SURE = 2.0


def remove_background(bright: np.ndarray) -> np.ndarray:
    """Ink intensity above the paper: lighting gradients, grey paper and shadows removed.

    A smooth surface fitted to the paper (:func:`estimate_background`) is subtracted
    first; then a white top-hat keeps only what is narrower than a quarter of the
    picture (:func:`top_hat`): strokes stay, and the plateau of a shadow, however sharp
    its edge, goes.

    Parameters
    ----------
    bright : numpy.ndarray
        The image with the ink bright (:func:`ink_bright`).

    Returns
    -------
    numpy.ndarray
        float32: about 0 on the paper (its median is 0), larger where there is ink.
    """
    return top_hat(bright - estimate_background(bright))


def top_hat(flat: np.ndarray, size: int | None = None) -> np.ndarray:
    """What is narrower than ``size`` pixels (made odd) in an image whose paper is
    flat: a white top-hat, its median (the paper) brought to 0. By default ``size`` is
    a quarter of the picture's shorter side, and at least 15."""
    from scipy import ndimage

    size = (_quarter(flat.shape) if size is None else size) | 1
    tophat = flat - ndimage.grey_opening(flat, size=(size, size))
    # The top-hat lifts a textured paper's grain above 0; its median, the paper, is 0.
    return (tophat - np.median(tophat)).astype(np.float32)


def _quarter(shape: tuple[int, ...]) -> int:
    """:func:`top_hat`'s default width: a quarter of the shorter side, at least 15
    pixels."""
    return max(15, min(shape) // 4)


def thicker_strokes_width(mask: np.ndarray) -> float:
    """The width of a mask's thicker strokes: the 95th percentile, along their middle
    lines, of twice the distance to their edge; 0 for an empty mask.

    A stroke's middle line is where the distance to its edge is largest across it (a
    ridge of the distance transform, as a skeleton is), so each length of stroke
    counts once whatever its width, and the thicker strokes set the width: a digit's,
    not a thinner box drawn around it and several times as long.
    """
    from scipy import ndimage

    if not mask.any():
        return 0.0
    inside = mask[_box(mask, 1)]
    distance = ndimage.distance_transform_edt(inside)
    # Across a stroke the distance rises by about a pixel per pixel, along its middle
    # far less: a pixel is on the middle if no neighbour is half a pixel further in.
    middle = inside & (distance > ndimage.maximum_filter(distance, size=3) - 0.5)
    return 2 * float(np.percentile(distance[middle], 95))


#: Ink must stand out of the paper within this many stroke widths around it
#: (:func:`stand_out_locally`).
_AROUND = 3


def stand_out_locally(flat: np.ndarray, ink: np.ndarray, seen: np.ndarray, high: float,
                      lines: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The ink of :func:`remove_background` where it also stands out of the paper a few
    stroke widths around it: a shadow's edge and the residue beside it are not ink.

    The quarter-picture top-hat keeps what the fitted paper cannot follow within a
    quarter of the picture: beside a shadow's sharp edge, a band of the shadow as wide
    as the paper's misfit, which joins the digits it crosses. Measured again over
    :data:`_AROUND` times the strokes' width (:func:`thicker_strokes_width` of the ink above
    ``high``, ruled lines left out: a page's many lines are thinner than its digits),
    each pixel keeps the smaller of its two strengths: a stroke is as strong at both
    scales, the band almost nothing at the smaller one. The thresholds stay those of
    the first measure; if no ink is left above ``high``, the first measure stands.

    Parameters
    ----------
    flat : numpy.ndarray
        The image with the ink bright (:func:`ink_bright`), its fitted paper
        (:func:`estimate_background`) subtracted.
    ink, seen : numpy.ndarray
        :func:`top_hat` of it, and that smoothed (:func:`smooth_noise`).
    high : float
        The higher threshold (:func:`ink_levels`).
    lines : numpy.ndarray
        bool: the ruled lines' pixels (:func:`find_lines`).

    Returns
    -------
    ink, seen : numpy.ndarray
    """
    from scipy import ndimage

    size = max(15, round(_AROUND * thicker_strokes_width((seen > high) & ~lines)))
    if size >= _quarter(flat.shape):
        return ink, seen
    # Only around the strong ink, two top-hat widths out: what lies further is not
    # joined to the digits by the band beside a shadow's edge.
    window = _box(seen > high, margin=2 * size)
    local = top_hat(flat[window], size)
    kept = seen.copy()
    kept[window] = np.minimum(seen[window],
                              ndimage.gaussian_filter(local, smoothing(flat.shape)))
    if not (kept > high).any():
        # Strokes wider than their strong core (a small faint photo, enlarged) fell
        # under the threshold at the smaller scale: they are the page's ink as found.
        return ink, seen
    kept_ink = ink.copy()
    kept_ink[window] = np.minimum(ink[window], local)
    return kept_ink, kept


def smooth_noise(ink: np.ndarray) -> np.ndarray:
    """The ink as the thresholds see it: sensor noise and the paper's grain smoothed
    away (Gaussian, over a pixel, or a 400th of a large picture whose strokes are many
    pixels wide)."""
    from scipy import ndimage

    return ndimage.gaussian_filter(ink, smoothing(ink.shape))


def smoothing(shape: tuple[int, ...]) -> float:
    """The width (Gaussian sigma, pixels) over which :func:`smooth_noise` smooths a
    picture of this shape, and so over which its paper's grain stays correlated."""
    return max(1.0, min(shape) / 400)


def _box(mask: np.ndarray, margin: int = 0) -> tuple[slice, slice]:
    """The rows and columns around the pixels of a (non-empty) mask, ``margin`` more
    on each side within the picture."""
    from scipy import ndimage

    rows, cols = ndimage.find_objects(mask.astype(np.int8))[0]
    return (slice(max(rows.start - margin, 0), rows.stop + margin),
            slice(max(cols.start - margin, 0), cols.stop + margin))


def noise_level(ink: np.ndarray) -> float:
    """The paper's noise: a robust standard deviation of the ink image, which the paper
    dominates (median absolute deviation, scaled for a normal law; written out so that a
    one-image prediction does not import ``scipy.stats``)."""
    return 1.4826 * float(np.median(np.abs(ink - np.median(ink)))) + 1e-4


def ink_levels(ink: np.ndarray, noise: float | None = None) -> tuple[float, float]:
    """The two thresholds of :func:`ink_mask`, from the page's own statistics.

    The higher one is Otsu's threshold of the image, and at least six times the paper's
    noise (:func:`noise_level`); the lower one is three times the noise, and at least
    20 % of the higher one.

    Parameters
    ----------
    ink : numpy.ndarray
        The ink's intensity, smoothed (:func:`smooth_noise`).
    noise : float, optional
        Its :func:`noise_level`, if measured already.

    Returns
    -------
    low, high : float
    """
    from skimage.filters import threshold_otsu

    noise = noise_level(ink) if noise is None else noise
    high = max(float(threshold_otsu(ink)) if ink.max() > ink.min() else 1.0, 6 * noise, 0.05)
    return max(3 * noise, 0.2 * high), high


def ink_mask(ink: np.ndarray, low: float, high: float,
             ignore: np.ndarray | None = None, grain: float = 0.0) -> np.ndarray:
    """Where the ink is: hysteresis between the two thresholds of :func:`ink_levels`.

    Pixels above ``high`` are ink, and so is every pixel above ``low`` that is
    connected to them (:func:`skimage.filters.apply_hysteresis_threshold`). A faint
    stroke is kept when it touches a strong one; a separate stroke (a 5's bar, a 4's
    cross-stroke) is kept when it holds some strong pixels, however faint it is beside
    the darkest one.

    Parameters
    ----------
    ink : numpy.ndarray
        The ink's intensity (:func:`remove_background`).
    low, high : float
        The thresholds.
    ignore : numpy.ndarray, optional
        Pixels that are never ink (the lines of :func:`find_lines`).
    grain : float
        How strong the paper's grain may be (:func:`map_ink`: 12 noise levels). A
        pixel weaker than this and than a quarter of the strongest ink it hangs on is
        left out: the grain next to a stroke, just above ``low``, does not spread the
        stroke into a blot. The ink it hangs on is the strongest ink at least as
        strong as the grain within a few grains of it (4 :func:`smoothing` widths),
        or, with none so near, the strongest of the nearest such ink's connected part
        (a piece with no pixel as strong as the grain stands for itself): a digit
        written lighter and touching a darker one keeps its strokes, and the grain
        beside a stroke, or between two strokes written close, is judged against the
        stronger. A clean drawing has no grain, and its faint anti-aliased strokes
        stay.

    Returns
    -------
    numpy.ndarray
        bool.
    """
    from scipy import ndimage
    from skimage.filters import apply_hysteresis_threshold

    if ignore is not None and ignore.any():
        ink = np.where(ignore, 0, ink)
    mask = apply_hysteresis_threshold(ink, low, high)
    if grain <= low or not mask.any():
        return mask
    pieces, _ = ndimage.label(mask, structure=np.ones((3, 3)))
    strong = mask & (ink >= grain)
    anchors = strong | (mask & ~np.isin(pieces, pieces[strong]))
    labels, count = ndimage.label(anchors, structure=np.ones((3, 3)))
    peaks = np.r_[0.0, ndimage.maximum(ink, labels, np.arange(1, count + 1))]
    box = _box(mask)
    # The strongest ink a few grains around; where there is none, the peak of the
    # nearest ink (measured within the ink's box only: a page is mostly paper).
    reach = 2 * math.ceil(_GRAIN_REACH * smoothing(ink.shape)) + 1
    hung_on = ndimage.maximum_filter(np.where(anchors[box], ink[box], 0), size=reach)
    _, (near_rows, near_cols) = ndimage.distance_transform_edt(~anchors[box],
                                                               return_indices=True)
    hung_on = np.where(hung_on > 0, hung_on, peaks[labels[box][near_rows, near_cols]])
    kept = mask.copy()
    kept[box] &= (ink[box] >= grain) | (ink[box] >= _FAINTEST * hung_on)
    return kept


#: A pixel as weak as the paper's grain is ink only if at least this share of the
#: strongest ink it hangs on (:func:`ink_mask`).
_FAINTEST = 0.25
#: The paper's grain, smoothed and correlated over a few pixels, reaches this many
#: noise levels (:func:`noise_level`) in places.
_GRAIN = 12
#: A pixel as weak as the grain is judged against the strongest ink within this many
#: smoothing widths (:func:`smoothing`) of it (:func:`ink_mask`).
_GRAIN_REACH = 4
#: Ruled lines are searched within this many degrees of horizontal and vertical.
_LINE_TILT = 3.0
#: A line covers at least this share of the picture's width (or height).
_LINE_COVER = 0.85


def _lines_across(mask: np.ndarray, vertical: bool) -> tuple[np.ndarray, int, int]:
    """Pixels of ``mask`` on straight lines that cross the whole picture, nearly
    horizontally (or vertically), found with a Hough transform; how many lines there
    are, and the thickest one's width."""
    from skimage.transform import hough_line

    h, w = mask.shape
    length = h if vertical else w
    centre = 0.0 if vertical else np.pi / 2  # the angle of the lines' normal
    step = np.degrees(1.0 / length)  # a drift of at most half a pixel along a line
    tilts = np.radians(np.arange(-_LINE_TILT, _LINE_TILT + step / 2, step))
    votes, angles, distances = hough_line(mask, theta=centre + tilts)
    # A line of any thickness or small tilt puts its votes in a few adjacent bins.
    spread = votes[:-2] + votes[1:-1] + votes[2:]
    best = spread.max(axis=1)  # over angles, for each distance
    found = np.zeros_like(mask)
    rows, cols = np.nonzero(mask)
    count = thickest = 0
    done = -1  # the last bin of the last band: a thick line has many peaks
    last = (0, -1)  # the bins of the last line found
    for index in np.flatnonzero((best >= 0.9 * length)
                                & (best >= np.maximum(np.r_[0, best[:-1]], np.r_[best[1:], 0]))):
        if index <= done:
            continue
        angle = int(np.argmax(spread[index]))
        column = votes[:, angle]
        # The band: the peak's bins that hold part of the line, and beyond them (a
        # thick line, a page's edge) every adjacent bin that holds most of a line.
        core = index + np.flatnonzero(column[index:index + 3] >= 0.1 * length)
        lo, hi = core.min(), core.max()
        while lo > 0 and column[lo - 1] >= 0.6 * length:
            lo -= 1
        while hi + 1 < len(column) and column[hi + 1] >= 0.6 * length:
            hi += 1
        done = hi
        d = cols * np.cos(angles[angle]) + rows * np.sin(angles[angle])
        on = (d >= distances[lo] - 0.5) & (d <= distances[hi] + 0.5)
        along = rows[on] if vertical else cols[on]
        # A line runs unbroken from edge to edge (a row of digits in a grid, whose
        # strokes line up, leaves gaps).
        if (along.size and along.min() <= 0.03 * length and along.max() >= 0.97 * length - 1
                and len(np.unique(along)) >= _LINE_COVER * length):
            found[rows[on], cols[on]] = True
            if lo <= last[1]:  # the same band again, at another tilt: one thick line
                last = (last[0], max(hi, last[1]))
            else:
                last = (lo, hi)
                count += 1
            thickest = max(thickest, last[1] - last[0] + 1)
    return found, count, thickest


#: A single thin line inside the picture is a ruled line when it runs on this share of
#: the picture's length beyond the rest of the ink at both ends.
_BEYOND = 0.05


def _beyond_the_rest(mask: np.ndarray, line: np.ndarray, vertical: bool) -> bool:
    """Whether the rest of the ink lies within the line's length, short of both of its
    ends by :data:`_BEYOND` of it (a digit written on a ruled line, the line's ends in
    the paper either side; a tight crop's 4 has its bar as wide as the rest)."""
    along = np.nonzero(mask & ~line)[0 if vertical else 1]
    if not along.size:
        return False
    length = mask.shape[0 if vertical else 1]
    # (a few specks of the paper's grain near the picture's edges do not count)
    first, last = np.percentile(along, [0.5, 99.5])
    return bool(first >= _BEYOND * length and last < (1 - _BEYOND) * length)


def find_lines(mask: np.ndarray) -> np.ndarray:
    """Ruled or squared paper's lines and the edges of a page, to be ignored as ink.

    Such lines run straight across the whole picture, from edge to edge, within a few
    degrees of horizontal or vertical (found by a Hough transform,
    :func:`skimage.transform.hough_line`). They count when there are at least two
    parallel ones (ruled or squared paper), when one lies along the picture's edge (a
    page's edge), or when one is thin (under a twentieth of the picture across) and
    runs on past the rest of the ink at both ends (:func:`_beyond_the_rest`: a digit
    written on a ruled line, the only one in the picture). A single long stroke inside
    the picture (a 1 in a tight crop) is not a line. Where a stroke crosses a line, the
    crossing is not part of the line.

    Parameters
    ----------
    mask : numpy.ndarray
        Everything that may be ink, faint lines included (bool: the ink above the lower
        threshold of :func:`ink_levels`).

    Returns
    -------
    numpy.ndarray
        bool: the lines' pixels.
    """
    from scipy import ndimage

    h, w = mask.shape
    lines = np.zeros_like(mask)
    if min(h, w) < 8 or not mask.any():
        return lines
    found = {}
    for vertical in (False, True):
        pixels, count, thickest = _lines_across(mask, vertical)
        if count == 1:
            where = np.flatnonzero(pixels.any(axis=0 if vertical else 1))
            across = w if vertical else h
            edge = max(1, across // 20)
            if (where.min() >= edge and where.max() < across - edge
                    and not (thickest <= edge and _beyond_the_rest(mask, pixels, vertical))):
                continue
        if count:
            # and a line's fringe, a pixel either side (anti-aliasing, JPEG)
            fringe = np.ones((1, 3) if vertical else (3, 1), bool)
            pixels = ndimage.binary_dilation(pixels, structure=fringe) & mask
            found[vertical] = pixels, thickest + 2
            lines |= pixels
    kept = mask & ~lines
    for vertical, (pixels, thickest) in found.items():
        reach = thickest + 2
        across = np.ones((1, 2 * reach + 1) if vertical else (2 * reach + 1, 1), bool)
        lines &= ~(pixels & ndimage.binary_closing(kept, structure=across))
    return lines


#: A pixel of a ruled line may be writing over it when its ink is this many times the
#: line's own (its 90th percentile: the lines' cores, few of their pixels written over).
_OVER_LINE = 1.5


def written_over(lines: np.ndarray, seen: np.ndarray, high: float) -> np.ndarray:
    """The lines (:func:`find_lines`) without the pixels where darker writing runs over
    them: a stroke along a light ruled or squared line (a 0's top on it) stays whole.
    Such pixels are darker than the line and joined to the strokes off the line; lines
    as dark as the writing (a form's printed grid) and a darker stretch of a line off
    the writing (a scan's dark edge) are left as they are.

    Parameters
    ----------
    lines : numpy.ndarray
        bool: the lines' pixels.
    seen : numpy.ndarray
        The ink's intensity, smoothed (:func:`smooth_noise`).
    high : float
        The ink's higher threshold (:func:`ink_levels`): strokes off the lines reach it.

    Returns
    -------
    numpy.ndarray
        bool: the lines' pixels that are the lines' own ink.
    """
    from scipy import ndimage

    if not lines.any():
        return lines
    darker = lines & (seen > _OVER_LINE * float(np.percentile(seen[lines], 90)))
    if not darker.any():
        return lines
    strokes = (seen > high) & ~lines
    labels, _ = ndimage.label(darker | strokes, structure=np.ones((3, 3), bool))
    joined = np.unique(labels[strokes])
    return lines & ~(darker & np.isin(labels, joined[joined > 0]))


@dataclass(frozen=True)
class InkMap:
    """The ink of a page, found (:func:`map_ink`).

    Attributes
    ----------
    ink : numpy.ndarray
        The ink's intensity above the paper (:func:`remove_background`).
    seen : numpy.ndarray
        The same with the noise smoothed away (:func:`smooth_noise`): what thresholds
        and measurements look at.
    mask : numpy.ndarray
        bool: the ink's pixels (:func:`ink_mask`), ruled lines and page edges left out.
    lines : numpy.ndarray
        bool: the lines' pixels (:func:`find_lines`).
    low, high : float
        The thresholds of :func:`ink_levels`; below ``low`` a pixel is paper.
    """

    ink: np.ndarray
    seen: np.ndarray
    mask: np.ndarray
    lines: np.ndarray
    low: float
    high: float

    def crop(self, window: tuple[slice, slice]) -> InkMap:
        """The part of the page in ``window`` (rows, columns): views, not copies."""
        return InkMap(self.ink[window], self.seen[window], self.mask[window],
                      self.lines[window], self.low, self.high)


def _no_ink(name: str) -> ImageError:
    """The error for a picture in which no ink is found."""
    return ImageError(f"{name}: no ink found (a blank or almost uniform image)")


def map_ink(grey: np.ndarray, name: str, dark: bool | None = None) -> InkMap:
    """Where the ink of a greyscale page is, and how strong.

    The steps: :func:`ink_bright` (with ``dark``, the page's polarity if decided
    already), :func:`remove_background` (:func:`estimate_background`, :func:`top_hat`),
    :func:`smooth_noise`, :func:`ink_levels`, :func:`stand_out_locally`,
    :func:`find_lines`, :func:`ink_mask`.

    Raises
    ------
    ImageError
        If no ink stands out of the paper (a blank or almost uniform image); the
        message starts with ``name``.
    """
    bright = ink_bright(grey, dark)
    flat = bright - estimate_background(bright)
    ink = top_hat(flat)
    seen = smooth_noise(ink)
    noise = noise_level(seen)
    if float(seen.max()) < max(0.05, 6 * noise):
        raise _no_ink(name)
    low, high = ink_levels(seen, noise)
    ink, seen = stand_out_locally(flat, ink, seen, high, find_lines(seen > low))
    lines = written_over(find_lines(seen > low), seen, high)
    mask = ink_mask(seen, low, high, ignore=lines, grain=_GRAIN * noise)
    if not mask.any():
        raise _no_ink(name)
    return InkMap(ink, seen, mask, lines, low, high)


@dataclass(frozen=True)
class Piece:
    """A connected piece of ink (:func:`ink_pieces`).

    Attributes
    ----------
    label : int
        Its number in the labelled image.
    bbox : tuple of int
        ``(top, left, bottom, right)``, bottom and right excluded.
    centroid : tuple of float
        ``(row, column)``.
    mass : float
        Its ink: area times mean intensity.
    width : float
        Its strokes' width: twice its area over its perimeter.
    at_edge : bool
        Whether it touches the picture's edge.
    area : int
        Its pixels.
    """

    label: int
    bbox: tuple[int, int, int, int]
    centroid: tuple[float, float]
    mass: float
    width: float
    at_edge: bool
    area: int

    @property
    def size(self) -> int:
        """The longer side of its box."""
        return max(self.bbox[2] - self.bbox[0], self.bbox[3] - self.bbox[1])


def ink_pieces(mask: np.ndarray, ink: np.ndarray
               ) -> tuple[np.ndarray, list[Piece], list[tuple[Piece, str]]]:
    """The connected pieces of ink that may belong to digits.

    Specks (pieces with under 2 % of the largest piece's ink) are dropped. Marks that
    are not digits are set aside with the reason: a box drawn around others
    (:func:`is_frame`), a line under them (:func:`is_underline`). Then pieces that are
    not strokes (:func:`is_stroke`: a shadow's patch, a blot) are dropped. When some
    ink lies inside the picture, what comes in from its edge is suspect (a shadow, the
    table beside a page): such pieces are dropped when over twice as thick as the
    strokes inside (:func:`skimage.measure.regionprops` measures them). When the
    largest piece is dropped (the table along the picture's side, a patch of shadow),
    specks are judged again beside the largest piece kept: beside the table, a short
    thin 1 had been a speck.

    Parameters
    ----------
    mask : numpy.ndarray
        Where the ink is (bool).
    ink : numpy.ndarray
        Its intensity.

    Returns
    -------
    labels : numpy.ndarray
        int: each pixel's piece (0: none), 8-connected.
    pieces : list of Piece
        The pieces kept.
    marks : list of (Piece, str)
        The frames and underlines set aside, and why.
    """
    from skimage.measure import label, regionprops

    labels = label(mask, connectivity=2)
    h, w = mask.shape
    pieces = []
    for p in regionprops(labels, intensity_image=ink):
        r0, c0, r1, c1 = p.bbox
        pieces.append(Piece(p.label, p.bbox, p.centroid, p.area * p.intensity_mean,
                            2 * p.area / max(p.perimeter, 1.0),
                            r0 == 0 or c0 == 0 or r1 == h or c1 == w, int(p.area)))
    if not pieces:
        return labels, pieces, []
    largest = max(p.mass for p in pieces)
    kept, marks = _kept_pieces(pieces, labels, mask, largest)
    if kept and max(p.mass for p in kept) < largest:
        kept, marks = _kept_pieces(pieces, labels, mask, max(p.mass for p in kept))
    return labels, kept, marks


#: Why a mark is set aside (:func:`ink_pieces`).
FRAME = "a box drawn around the digits (a frame), not a digit"
UNDERLINE = "a line under the digits (an underline), not a digit"


#: A mark at least this many times as wide as tall, and no taller than :data:`FLAT`
#: times its strokes' width, is a line (an underline, a dash), not a digit.
WIDE, FLAT = 3.0, 3.0


def is_line(width: float, height: float, stroke: float) -> bool:
    """Whether a mark ``width`` by ``height`` drawn with strokes ``stroke`` wide is a
    line across (an underline, a dash): wide and flat (:data:`WIDE`, :data:`FLAT`)."""
    return width >= WIDE * height and height <= FLAT * stroke


def is_underline(piece: Piece, boxes: np.ndarray) -> bool:
    """Whether a piece of ink is a line drawn under others (:func:`is_line`).

    Such a line lies under the marks it underlines (overlapping half the narrower's
    columns), at least its own thickness and at most the nearest mark's height below
    them, and nearer to them than to anything under it. A 5's or a 7's bar written
    apart lies over its digit's body, a 2's base drawn apart starts where the stroke
    above it ended, and a page's edge lies far below the digits.

    Parameters
    ----------
    piece : Piece
        The piece.
    boxes : numpy.ndarray
        int (N, 4): the boxes of the page's pieces (``Piece.bbox``), this one's among
        them or not.
    """
    top, left, bottom, right = piece.bbox
    if not is_line(right - left, bottom - top, piece.width):
        return False
    beside = boxes[_over_one_another(piece.bbox, boxes)]
    over = beside[beside[:, 2] <= top]
    under = beside[beside[:, 0] >= bottom]
    if not len(over):
        return False
    nearest = over[np.argmax(over[:, 2])]
    gap = top - nearest[2]
    return bool(piece.width <= gap <= nearest[2] - nearest[0]
                and (not len(under) or under[:, 0].min() - bottom > 2 * gap))


#: A frame's side is ink along this share of its length...
_ALONG = 0.85
#: ...within this many of its strokes' widths (or this share of the frame's size) of
#: the frame's box: a side drawn by hand wavers.
_WAVER, _WAVER_SHARE = 1.5, 0.04


def is_frame(piece: Piece, labels: np.ndarray, boxes: np.ndarray) -> bool:
    """Whether a piece of ink is a box drawn around others (a form's box, a frame), not
    part of a digit.

    A frame's ink runs along all four sides of its box: on each side, the outermost ink
    of at least :data:`_ALONG` of the side's columns (or rows) lies within
    :data:`_WAVER` stroke widths of the side; and it holds another piece inside its box.
    A 0 is round (its outermost ink meets its box only near the middle of each side),
    and holds no piece of its own.

    Parameters
    ----------
    piece : Piece
        The piece.
    labels : numpy.ndarray
        int: each pixel's piece (:func:`ink_pieces`).
    boxes : numpy.ndarray
        int (N, 4): the boxes of the page's pieces (``Piece.bbox``), this one's among
        them or not.
    """
    top, left, bottom, right = piece.bbox
    # A frame is hollow: a speck or a blot fills its box, and is not compared with
    # every other piece (a page of specks has thousands).
    if piece.area > 0.7 * (bottom - top) * (right - left) or not np.any(
            (boxes[:, 0] > top) & (boxes[:, 1] > left) & (boxes[:, 2] < bottom)
            & (boxes[:, 3] < right)):
        return False
    mine = labels[top:bottom, left:right] == piece.label
    for side in (mine, mine[::-1], mine.T, mine.T[::-1]):  # top, bottom, left, right
        near = max(_WAVER * piece.width, _WAVER_SHARE * side.shape[0])
        # the first row of ink in each column, from this side (a column without ink: never)
        first = np.where(side.any(axis=0), side.argmax(axis=0), side.shape[0])
        if np.mean(first < near) < _ALONG:
            return False
    return True


def _kept_pieces(pieces: list[Piece], labels: np.ndarray, mask: np.ndarray,
                 largest: float) -> tuple[list[Piece], list[tuple[Piece, str]]]:
    """The pieces :func:`ink_pieces` keeps, a speck being under 2 % of ``largest`` (the
    ink of the piece it is judged beside), and the marks it sets aside."""
    pieces = [p for p in pieces if p.mass >= 0.02 * largest]
    # Set aside before the strokes are measured: a thin frame or underline beside a
    # digit written bold would make the digit look like a blot.
    boxes = np.array([p.bbox for p in pieces], int).reshape(-1, 4)
    marks = []
    for p in pieces:
        if is_frame(p, labels, boxes):
            marks.append((p, FRAME))
        elif is_underline(p, boxes):
            marks.append((p, UNDERLINE))
    aside = {p.label for p, _ in marks}
    pieces = _strokes([p for p in pieces if p.label not in aside], labels, mask)
    inside = sorted((p for p in pieces if not p.at_edge), key=lambda p: p.width)
    if inside and len(inside) < len(pieces):
        masses = np.cumsum([p.mass for p in inside])
        stroke = inside[int(np.searchsorted(masses, masses[-1] / 2))].width
        pieces = [p for p in pieces if not p.at_edge or p.width <= 2 * stroke]
    return pieces, marks


#: A piece whose thickest part is this many times the page's stroke width is not a
#: stroke (a patch of shadow, a blot, a finger)...
BLOB = 4.0
#: ...unless its area is this many squares of its thickest part: a digit written bold
#: among thin ones is a long stroke (5 to 9 squares measured); a patch is about as long
#: as thick (1 to 1.5).
LONG = 3.0


def thickest_parts(labels: np.ndarray, mask: np.ndarray, pieces: list[Piece]) -> np.ndarray:
    """Each piece's thickest part: twice the largest distance from its inside to its
    edge (:func:`scipy.ndimage.distance_transform_edt`)."""
    from scipy import ndimage

    distance = ndimage.distance_transform_edt(mask)
    return 2 * np.asarray(ndimage.maximum(distance, labels, [p.label for p in pieces]),
                          float).reshape(-1)


def stroke_width(thickest: np.ndarray, pieces: list[Piece] | None = None) -> float:
    """The page's stroke width: the lower quartile of its pieces' thickest parts
    (:func:`thickest_parts`). A shadow is one thick piece among thin ones, so it does
    not set the width. Given the ``pieces`` measured, only those inside the picture
    count when there are any: a piece cut by the picture's edge (a sliver of a
    shadow's edge) is thinner than its stroke."""
    if pieces is not None:
        inside = np.array([not p.at_edge for p in pieces], bool)
        if inside.any():
            thickest = np.asarray(thickest)[inside]
    return float(np.percentile(thickest, 25, method="lower"))


def is_stroke(piece: Piece, thickest: float, stroke: float) -> bool:
    """Whether a piece of ink is a stroke, given its thickest part
    (:func:`thickest_parts`) and the page's stroke width (:func:`stroke_width`).

    A stroke is no thicker than :data:`BLOB` stroke widths or, however thick, long for
    its thickness (an area of :data:`LONG` squares of its thickest part: a digit written
    bold beside thin ones). A patch of shadow, a blot or a finger is thick and about as
    long as thick.
    """
    return bool(thickest <= BLOB * stroke or piece.area >= LONG * thickest ** 2)


def _strokes(pieces: list[Piece], labels: np.ndarray, mask: np.ndarray) -> list[Piece]:
    """The pieces that are strokes (:func:`is_stroke`)."""
    if len(pieces) < 2:
        return pieces
    thickest = thickest_parts(labels, mask, pieces)
    stroke = stroke_width(thickest, pieces)
    return [p for p, t in zip(pieces, thickest, strict=True) if is_stroke(p, t, stroke)]


def _grouped(pieces: list[Piece], gap: float) -> list[int]:
    """For each piece, the number of its group: pieces whose boxes come within ``gap``
    of each other are in one group."""
    def near(a: Piece, b: Piece) -> bool:
        return (a.bbox[0] - gap < b.bbox[2] and b.bbox[0] - gap < a.bbox[2]
                and a.bbox[1] - gap < b.bbox[3] and b.bbox[1] - gap < a.bbox[3])

    found = groups(range(len(pieces)), column_neighbours([p.bbox for p in pieces], gap),
                   lambda i, j: near(pieces[i], pieces[j]))
    number = {i: g for g, members in enumerate(found) for i in members}
    return [number[i] for i in range(len(pieces))]


def select_digit(mask: np.ndarray, ink: np.ndarray) -> np.ndarray:
    """The ink that a person would point at: the digit, its parts kept together.

    Of the pieces of :func:`ink_pieces`, those within a quarter of the largest one's
    size of each other are grouped (the parts of one digit: a 5's bar, a broken
    stroke); the group with the most ink, favouring the middle of the picture, is the
    digit. When some ink lies inside the picture, pieces at its edge count for a tenth.

    Parameters
    ----------
    mask : numpy.ndarray
        Where the ink is (bool).
    ink : numpy.ndarray
        Its intensity.

    Returns
    -------
    numpy.ndarray
        bool: the digit's pixels.
    """
    return _chosen(mask, *ink_pieces(mask, ink)[:2])


def _chosen(mask: np.ndarray, labels: np.ndarray, pieces: list[Piece]) -> np.ndarray:
    """:func:`select_digit` on the pieces of :func:`ink_pieces`."""
    if not pieces:
        return mask
    h, w = mask.shape
    inside = [p for p in pieces if not p.at_edge]
    groups = _grouped(pieces, gap=0.25 * max(inside or pieces, key=lambda p: p.mass).size)
    half_diagonal = np.hypot(h, w) / 2
    score: dict[int, float] = {}
    for piece, group in zip(pieces, groups, strict=True):
        cy, cx = piece.centroid
        centrality = 1 - 0.5 * np.hypot(cy - h / 2, cx - w / 2) / half_diagonal
        weight = 0.1 if inside and piece.at_edge else 1.0
        score[group] = score.get(group, 0.0) + piece.mass * centrality * weight
    best = max(score, key=score.__getitem__)
    return np.isin(labels, [p.label for p, g in zip(pieces, groups, strict=True) if g == best])


#: A stroke pressed lighter reaches the higher threshold divided by this (:func:`faint_ink`)
#: and is strengthened at most this many times (:func:`digit_ink`): fainter ink, a
#: paper's grey taken in with a digit, stays as faint as it is.
_LIGHTER = 3


def faint_ink(page: InkMap) -> np.ndarray:
    """Where lighter strokes are: :func:`ink_mask` with the higher threshold lowered to
    a third (a stroke pressed lightly, a pen running dry)."""
    return ink_mask(page.seen, page.low, max(page.low, page.high / _LIGHTER),
                    ignore=page.lines)


def faint_parts(page: InkMap, digit: np.ndarray, marks: np.ndarray | None = None
                ) -> np.ndarray:
    """Parts of a digit written apart and lighter than the rest (a 5's bar, a 4's
    cross-stroke): pieces of :func:`faint_ink` apart from the digit, within a quarter of
    its size of it, with at least 5 % as much ink, not touching the picture's border
    (where a page's edge or a shadow is), and holding none of ``marks``.

    Parameters
    ----------
    page : InkMap
        The page's ink (:func:`map_ink`).
    digit : numpy.ndarray
        bool: the digit's pixels (:func:`select_digit`).
    marks : numpy.ndarray, optional
        bool: the pixels of the marks set aside (:func:`ink_pieces`: a box drawn around
        the digit, a line under it), which are no part of it however near.

    Returns
    -------
    numpy.ndarray
        bool: their pixels (none if there are none).
    """
    from skimage.measure import label, regionprops

    found = np.zeros_like(digit)
    if not digit.any():
        return found
    rows, cols = np.nonzero(digit)
    top, left, bottom, right = rows.min(), cols.min(), rows.max() + 1, cols.max() + 1
    gap = 0.25 * max(bottom - top, right - left)
    mass = float(page.seen[digit].sum())
    labels = label(faint_ink(page), connectivity=2)
    height, width = digit.shape
    for piece in regionprops(labels, intensity_image=page.seen):
        r0, c0, r1, c1 = piece.bbox
        near = (r0 - gap < bottom and top - gap < r1 and c0 - gap < right and left - gap < c1)
        inside = r0 > 0 and c0 > 0 and r1 < height and c1 < width
        if (near and inside and piece.area * piece.intensity_mean >= 0.05 * mass
                and not digit[labels == piece.label].any()
                and (marks is None or not marks[labels == piece.label].any())):
            found |= labels == piece.label
    return found


#: The anti-aliased rim kept around a digit's pixels, in pixels.
_RIM = 2


def digit_ink(page: InkMap, pixels: np.ndarray) -> np.ndarray:
    """A digit's ink in [0, 1] (ink high, everything else 0), given its pixels.

    The pixels and their anti-aliased rim (two pixels around, less other ink) are
    kept, and scaled so that each stroke reaches 1: the digit's strokes at their 90th
    percentile; a stroke pressed lighter (a pen running dry, one side lit less), if it
    is as strong as the lighter strokes :func:`faint_ink` finds, at the strongest ink
    of the digit within its stroke width and rim, strengthened at most three times.
    MNIST's digits were black and white before they were scaled: a stroke's strength
    says nothing of the digit, and a light part kept grey reads as missing (a 7's
    light bar read as a 1).
    """
    from scipy import ndimage

    from mnist_cnn.reading.mnist_format import stroke_width as mean_stroke_width

    level = float(np.percentile(page.ink[pixels], 90))
    floor = 0.5 * page.low
    reach = math.ceil(mean_stroke_width(pixels) / 2) + _RIM
    window = _box(pixels, reach)  # holds the rim, and all the ink within reach of it
    ink, mine = page.ink[window], pixels[window]
    rim = ndimage.binary_dilation(mine, iterations=_RIM) & ~(page.mask[window] & ~mine)
    nearby = ndimage.grey_dilation(np.where(mine, ink, 0), size=(2 * reach + 1,) * 2)
    lighter = np.maximum(np.minimum(level, nearby), floor + (level - floor) / _LIGHTER)
    strength = np.where(nearby >= page.high / _LIGHTER, lighter, level)
    found = np.zeros(page.ink.shape, np.float32)
    found[window] = np.clip((ink - floor) / np.maximum(strength - floor, 1e-6), 0, 1) * rim
    return found


def one_over_another(a: Piece, b: Piece) -> bool:
    """Whether two pieces overlap horizontally by half the narrower one (one over the
    other: parts of one character)."""
    return bool(_over_one_another(a.bbox, np.array([b.bbox]))[0])


def _over_one_another(box: tuple[int, int, int, int], boxes: np.ndarray) -> np.ndarray:
    """:func:`one_over_another` of a box and each of ``boxes`` (int (N, 4)), at once."""
    overlap = np.minimum(boxes[:, 3], box[3]) - np.maximum(boxes[:, 1], box[1])
    return overlap >= 0.5 * np.minimum(boxes[:, 3] - boxes[:, 1], box[3] - box[1])


def other_digits(pieces: list[Piece], digit: np.ndarray) -> int:
    """How many marks beside the digit found look like digits too. Marks are taken two
    ways: groups of pieces near each other (as in :func:`select_digit`), and characters
    (pieces one over another, which parts digits written close); either way, one looks
    like a digit when it lies inside the picture with at least a third of the ink of
    the largest and between half and twice the digit's height. Several mean the
    picture holds a number, not one digit (read whole by :func:`mnist_cnn.read_number`).
    ``pieces`` are the page's (:func:`ink_pieces`), the digit's among them.
    """
    pieces = [p for p in pieces if not p.at_edge]
    rows = np.flatnonzero(digit.any(axis=1))
    if len(pieces) < 2 or not len(rows):
        return 0
    height = rows[-1] - rows[0] + 1
    near = _grouped(pieces, gap=0.25 * height)
    by_nearness = [[p for p, g in zip(pieces, near, strict=True) if g == group]
                   for group in set(near)]
    by_column = groups(pieces, column_neighbours([p.bbox for p in pieces]), one_over_another)
    found = 0
    for marks in (by_nearness, by_column):
        masses = [sum(p.mass for p in m) for m in marks]
        tall = [max(p.bbox[2] for p in m) - min(p.bbox[0] for p in m) for m in marks]
        alike = sum(mass >= max(masses) / 3 and 0.5 <= t / height <= 2
                    for mass, t in zip(masses, tall, strict=True))
        found = max(found, alike - 1)
    return int(found)


#: A photo of one digit with a side under this many pixels is enlarged to it...
_SMALL = 96
#: ...unless it is a clean drawing: noise under a grey level, on paper within a grey
#: level of black or white.
_CLEAN = 1 / 255


@dataclass(frozen=True)
class FoundDigit:
    """The digit found in a picture (:func:`find_digit`).

    Attributes
    ----------
    ink : numpy.ndarray
        Its ink in [0, 1] (ink high, everything else 0).
    others : int
        How many other marks in the picture look like digits (:func:`other_digits`).
    """

    ink: np.ndarray
    others: int


def _clean(grey: np.ndarray) -> bool:
    """Whether an image is a clean drawing: no noise, and black or white paper (a
    flat grey paper without noise is a photo saved smoothly, a JPEG of a phone's)."""
    paper = float(np.median(grey))
    return noise_level(grey) <= _CLEAN and min(paper, 1 - paper) <= _CLEAN


def paper_margin(shape: tuple[int, ...]) -> int:
    """The width of the margin :func:`surrounded_by_paper` adds to a picture of this
    shape: a quarter of its longer side."""
    return max(1, round(max(shape) / 4))


def surrounded_by_paper(grey: np.ndarray) -> np.ndarray:
    """The picture with a margin of its paper around it, a quarter of its longer side
    wide.

    A picture's border is mostly paper: its paper is the border's pixels within three
    noise deviations of their median (a stroke that reaches the border is far darker or
    lighter). The margin beyond each side is drawn from that side's paper, so that it
    has the paper's level there and its grain (with a fixed seed: the same picture, the
    same margin)."""
    sides = (grey[0], grey[-1], grey[:, 0], grey[:, -1])
    border = _border(grey)
    middle = float(np.median(border))
    spread = 3 * noise_level(border) + _CLEAN
    papers = [side[np.abs(side - middle) <= spread] for side in sides]
    every = border[np.abs(border - middle) <= spread]
    margin = paper_margin(grey.shape)
    out = np.pad(grey, margin)
    rng = np.random.default_rng(0)
    # Above and below (corners included), then left and right.
    regions = (out[:margin], out[-margin:], out[margin:-margin, :margin],
               out[margin:-margin, -margin:])
    for region, paper in zip(regions, papers, strict=True):
        region[:] = rng.choice(paper if paper.size else every, region.shape)
    return out


def _sides(mask: np.ndarray) -> int:
    """How many of the picture's four sides a (non-empty) mask touches."""
    rows, cols = _box(mask)
    return ((rows.start == 0) + (rows.stop == mask.shape[0]) + (cols.start == 0)
            + (cols.stop == mask.shape[1]))


def find_digit(grey: np.ndarray, name: str) -> FoundDigit:
    """The digit of a greyscale image: :func:`map_ink`, :func:`select_digit`,
    :func:`faint_parts`, :func:`digit_ink`; and how many other digits it holds.

    A picture cropped to the digit's strokes is read again with a margin of its paper
    around it (:func:`surrounded_by_paper`): the steps measure the paper around the
    ink, and scale with the picture, which a digit filling it confuses (the paper's fit
    runs through the ink, the polarity is a toss, the top-hat takes in the strokes).
    Such a picture is one whose polarity is not sure (:func:`polarity`), whose digit
    touches two or more of its sides, or in which no ink was found. Ink found mostly in
    the margin is left out (where its paper meets the picture's own). Where the margin
    holds no ink found (a border that is not all paper), the picture is read as it is.

    Raises
    ------
    ImageError
        If no ink stands out of the paper (a blank or almost uniform image).
    """
    found = None
    known = polarity(grey)
    if known.sure:
        try:
            found = _found_digit(grey, name, known.dark)
        except ImageError:
            pass
        else:
            if _sides(found.ink > 0) < 2:
                return found
    try:
        return _found_digit(surrounded_by_paper(grey), name, margin=paper_margin(grey.shape))
    except ImageError:
        if found is not None:
            return found
        if known.sure:
            raise
    return _found_digit(grey, name, known.dark)


def _found_digit(grey: np.ndarray, name: str, dark: bool | None = None,
                 margin: int = 0) -> FoundDigit:
    """:func:`find_digit` on the picture as it is (``dark``: its polarity, if decided;
    ``margin``: the width of the paper :func:`surrounded_by_paper` added around it)."""
    scale = 1.0
    if min(grey.shape) < _SMALL and not _clean(grey):
        # A small photo is enlarged first: the smoothing and the background's blocks
        # are a pixel or more wide, too coarse for strokes a pixel or two wide in noise.
        # A clean drawing (MNIST's own digits) needs none.
        from scipy import ndimage

        # Beyond the picture is more of its border (scipy's default, a constant 0, made
        # the last row and column black: a dark frame taken for ink or a page's edge).
        scale = _SMALL / min(grey.shape)
        grey = np.clip(ndimage.zoom(grey, scale, order=3, mode="nearest"), 0, 1)
        dark = None  # the enlarged picture's own
    page = map_ink(grey, name, dark)
    labels, pieces, marks = ink_pieces(page.mask, page.seen)
    if margin and pieces:
        # The margin is paper made up of the border's pixels: ink found mostly there is
        # where that paper meets the picture's own (its grain, its shading), not a stroke.
        edge = round(margin * scale)
        within = np.bincount(labels[edge:-edge, edge:-edge].ravel(), minlength=labels.max() + 1)
        pieces = [p for p in pieces if 2 * within[p.label] >= p.area]
        if not pieces:
            raise _no_ink(name)
    digit = _chosen(page.mask, labels, pieces)
    ink = digit_ink(page, digit)
    faint = faint_parts(page, digit,
                        np.isin(labels, [p.label for p, _ in marks]) if marks else None)
    # Written lighter, the parts are brought to the strength of the rest, as in MNIST.
    if faint.any():
        ink = np.maximum(ink, digit_ink(page, faint))
    return FoundDigit(ink, other_digits(pieces, digit | faint))


def find_ink(grey: np.ndarray, name: str) -> np.ndarray:
    """The digit's ink in [0, 1] (ink high, everything else 0), from a greyscale image
    (:func:`find_digit`).

    Raises
    ------
    ImageError
        If no ink stands out of the paper (a blank or almost uniform image).
    """
    return find_digit(grey, name).ink
