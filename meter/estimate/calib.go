package estimate

import "math"

// calib is one learned ratio of tokens to counted bytes, with the error its
// predictions have shown.
//
// The ratio is an exponentially weighted mean of the ratios that reports
// show (actual tokens less the fixed costs, over the counted bytes): the
// first observation replaces the prior, the n-th weighs 1/n, and from the
// tenth on each weighs minAlpha, so the ratio follows a model whose traffic
// changes while one odd request moves it little. Each observation is first
// clamped to within a factor maxStep of the current ratio (maxFirstStep of
// the prior for the first), so an outlier (a request whose tokens the body
// does not hold) cannot throw it far.
//
// err is the same kind of mean of each prediction's relative error
// |actual − predicted| / actual (clamped to 1), with the prior's assumed
// error priorErr counting as one observation. The estimate adds a margin of
// marginK × err to the predicted tokens, between minMargin and maxMargin:
// while the ratio is young or the traffic irregular the margin is wide, and
// it narrows to a few percent as predictions prove right.
type calib struct {
	ratio float64 // tokens per counted byte
	err   float64 // mean relative error of the predictions
	n     int64   // observations the ratio learned from
	nErr  int64   // observations the error learned from, the prior's included
}

const (
	priorErr  = 0.10
	marginK   = 2.0
	minMargin = 0.02
	maxMargin = 0.5
	minAlpha  = 0.1
	maxStep   = 2.0
	// maxFirstStep bounds the first observation, which replaces the prior:
	// a model may cut text far finer than its family's prior assumes.
	maxFirstStep = 4.0
	// minRatio and maxRatio bound any learned ratio (20 bytes a token to
	// 20 tokens a byte, the latter for output whose reasoning the stream
	// does not show).
	minRatio = 1.0 / 20
	maxRatio = 20.0
)

func newCalib(p prior) calib {
	return calib{ratio: 1 / p.bytesPerToken, err: priorErr, nErr: 1}
}

// margin is the fraction added to a prediction.
func (c calib) margin() float64 {
	return min(max(marginK*c.err, minMargin), maxMargin)
}

// predict is the central estimate for text counted bytes and fixed tokens.
func (c calib) predict(text, fixed int64) float64 {
	return float64(fixed) + c.ratio*float64(text)
}

// tokens is the estimate: the prediction with its margin, rounded up.
func (c calib) tokens(text, fixed int64) int64 {
	return ceilCount(c.predict(text, fixed) * (1 + c.margin()))
}

// learn takes one observation: a request of text counted bytes and fixed
// tokens that the provider counted as actual tokens.
func (c *calib) learn(text, fixed, actual int64) {
	if text <= 0 || actual <= 0 {
		return
	}
	if c.n > 0 {
		// The first observation measures the prior, not a learned ratio.
		c.nErr++
		rel := math.Abs(float64(actual)-c.predict(text, fixed)) / float64(actual)
		c.err += alpha(c.nErr) * (min(rel, 1) - c.err)
	}
	step := maxStep
	if c.n == 0 {
		step = maxFirstStep
	}
	obs := float64(actual-fixed) / float64(text)
	obs = min(max(obs, c.ratio/step), c.ratio*step)
	c.n++
	c.ratio += alpha(c.n) * (obs - c.ratio)
	c.ratio = min(max(c.ratio, minRatio), maxRatio)
}

// alpha is the weight of the n-th observation.
func alpha(n int64) float64 {
	return max(1/float64(n), minAlpha)
}

// ceilCount rounds a non-negative token count up to an int64, saturating.
func ceilCount(f float64) int64 {
	switch {
	case !(f > 0): // also NaN
		return 0
	case f >= math.MaxInt64:
		return math.MaxInt64
	}
	return int64(math.Ceil(f))
}
