# The main job: store a generated file in a local-filesystem store and read it back, verified.
#
#   mix run examples/main_job.exs [SIZE_MIB] [ROOT]
#
# No server is needed. Prints throughput for each step and the verified SHA-256 digest.

{size_mib, root} =
  case System.argv() do
    [] -> {256, Path.join(System.tmp_dir!(), "objectstorex-main-job")}
    [size] -> {String.to_integer(size), Path.join(System.tmp_dir!(), "objectstorex-main-job")}
    [size, root | _] -> {String.to_integer(size), root}
  end

mib = 1_048_576
size = size_mib * mib
work = Path.join(System.tmp_dir!(), "objectstorex-main-job-files")
File.mkdir_p!(work)
source = Path.join(work, "source.bin")
back = Path.join(work, "downloaded.bin")

rate = fn bytes, micros ->
  :erlang.float_to_binary(bytes / max(micros, 1), decimals: 0) <> " MB/s"
end

IO.puts("Generating #{size_mib} MiB of random data in #{source}")

File.open!(source, [:write, :binary, :raw], fn file ->
  for _ <- 1..size_mib, do: :ok = :file.write(file, :crypto.strong_rand_bytes(mib))
end)

expected =
  File.stream!(source, [], 8 * mib)
  |> Enum.reduce(:crypto.hash_init(:sha256), &:crypto.hash_update(&2, &1))
  |> :crypto.hash_final()
  |> Base.encode16(case: :lower)

store = ObjectStoreX.new!(:local, root: root)
IO.puts("Store: #{inspect(store)}")

{micros, upload} =
  :timer.tc(fn -> ObjectStoreX.upload_file!(store, "main-job/data.bin", source, hash: :sha256) end)

IO.puts(
  "upload_file     #{size_mib} MiB in #{div(micros, 1000)} ms  #{rate.(size, micros)}  (#{upload.parts} parts)"
)

{micros, summary} =
  :timer.tc(fn ->
    parent = self()

    ObjectStoreX.Stream.download(store, "main-job/data.bin",
      chunk_size: 8 * mib,
      hash: :sha256,
      verify: expected,
      on_complete: &send(parent, {:summary, &1})
    )
    |> Stream.into(File.stream!(back, [:raw]))
    |> Stream.run()

    receive do
      {:summary, summary} -> summary
    end
  end)

IO.puts(
  "stream download #{size_mib} MiB in #{div(micros, 1000)} ms  #{rate.(size, micros)}  (#{summary.chunks} chunks)"
)

{micros, meta} =
  :timer.tc(fn -> ObjectStoreX.download_file!(store, "main-job/data.bin", back) end)

IO.puts("download_file   #{size_mib} MiB in #{div(micros, 1000)} ms  #{rate.(meta.size, micros)}")

same? = File.stat!(back).size == size and upload.digest == expected and summary.digest == expected

if same? do
  IO.puts("Verified: sha256 #{expected} (source, upload and download agree)")
else
  IO.puts(
    :stderr,
    "MISMATCH: source #{expected}, upload #{upload.digest}, download #{summary.digest}"
  )

  System.halt(1)
end

ObjectStoreX.delete!(store, "main-job/data.bin")
File.rm_rf!(work)
