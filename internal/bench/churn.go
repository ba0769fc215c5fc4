package bench

// Churn says how instances came and went in `bench memory --arrivals`.
type Churn struct {
	Rate     float64 `json:"arrivals_per_s"`
	Lifetime float64 `json:"lifetime_s"`
	Duration float64 `json:"duration_s"`
}
