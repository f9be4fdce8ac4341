-- A second database for MLflow's tracking store, owned by the same role as SFAI's.
CREATE DATABASE mlflow OWNER sfai;
