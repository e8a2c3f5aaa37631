# Peak RSS of this VM for one job: mix run bench/rss.exs slow-download|upload SIZE_MIB
# Prints `RSS before_kib peak_kib documented_bound_bytes`.
[job, size] = System.argv()
n = String.to_integer(size)
mib = 1_048_576
root = Path.join(System.tmp_dir!(), "objectstorex-bench-rss")
store = ObjectStoreX.new!(:local, root: root)

status = fn key ->
  [_, kib] = Regex.run(~r/#{key}:\s+(\d+) kB/, File.read!("/proc/self/status"))
  String.to_integer(kib)
end

block = :crypto.strong_rand_bytes(mib)

bound =
  case job do
    "slow-download" ->
      path = Path.join(root, "rss.bin")

      unless File.exists?(path) and File.stat!(path).size == n * mib do
        File.mkdir_p!(root)
        File.open!(path, [:write, :raw], fn f -> for _ <- 1..n, do: :file.write(f, block) end)
      end

      :erlang.garbage_collect()
      Process.put(:base, status.("VmRSS"))
      chunk = 8 * mib

      ObjectStoreX.Stream.download(store, "rss.bin", chunk_size: chunk, prefetch: 2)
      |> Enum.each(fn _ -> Process.sleep(10) end)

      # In flight, plus the pool of reusable local read buffers.
      3 * chunk + 64 * mib

    "upload" ->
      :erlang.garbage_collect()
      Process.put(:base, status.("VmRSS"))
      part = 64 * mib

      # Fresh data for every chunk: one binary sent again and again would be shared, not held.
      :ok =
        Stream.repeatedly(fn -> :crypto.strong_rand_bytes(mib) end)
        |> Stream.take(n)
        |> ObjectStoreX.Stream.upload(store, "rss-up.bin", part_size: part, max_concurrency: 2)

      ObjectStoreX.delete!(store, "rss-up.bin")
      3 * part + mib
  end

IO.puts("RSS #{Process.get(:base)} #{status.("VmHWM")} #{bound}")
