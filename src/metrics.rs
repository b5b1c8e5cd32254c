//! Forecast accuracy measures (RMSE, MAE, MAPE, directional accuracy). Pure (STUB).
