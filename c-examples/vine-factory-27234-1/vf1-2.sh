#!/bin/sh
#SBATCH --job-name=vine-worker-27234-1
#SBATCH --output=/work/main/c-examples/vine-factory-27234-1/vf1-2.out
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=1
exec /work/main/target/release/vine_worker 127.0.0.1 45687 --cores 1 --gpus 0 --timeout 60 --factory-job vf1-2
