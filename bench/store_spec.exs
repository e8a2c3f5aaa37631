# The STORE argument of the bench programs: `memory`, `local:DIR` or `s3:ENDPOINT:BUCKET`
# (credentials from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, default "test"); and the
# documented memory bound of a download from such a store, which the programs print.
defmodule Bench.StoreSpec do
  @mib 1_048_576

  @doc """
  The documented memory bound of `streams` concurrent `ObjectStoreX.Stream.download/3`s with
  `chunk` bytes per chunk and the backend's default read-ahead: `(prefetch + 1) * chunk` per
  stream, plus, on the local store, its process-wide pool of read buffers (64 MiB).
  """
  def download_bound(%{backend: backend}, chunk, streams \\ 1) do
    {prefetch, pool} =
      case backend do
        :local -> {15, 64 * @mib}
        :memory -> {16, 0}
        _ -> {2, 0}
      end

    streams * (prefetch + 1) * chunk + pool
  end

  @doc """
  The store named by `spec`, the library's modules loaded first, as a release loads them at
  boot (embedded mode): `mix run` loads a module at its first call, which would otherwise
  happen inside the measured part (about 3 ms for `ObjectStoreX.Stream`).
  """
  def open!(spec) do
    {:ok, modules} = :application.get_key(:objectstorex, :modules)
    Enum.each(modules, &Code.ensure_loaded!/1)
    store(spec)
  end

  defp store("memory"), do: ObjectStoreX.new!(:memory)
  defp store("local:" <> dir), do: ObjectStoreX.new!(:local, root: dir)

  defp store("s3:" <> rest) do
    [bucket | endpoint] = rest |> String.split(":") |> Enum.reverse()

    ObjectStoreX.new!(:s3,
      bucket: bucket,
      endpoint: endpoint |> Enum.reverse() |> Enum.join(":"),
      region: "us-east-1",
      access_key_id: System.get_env("AWS_ACCESS_KEY_ID", "test"),
      secret_access_key: System.get_env("AWS_SECRET_ACCESS_KEY", "test"),
      allow_http: true
    )
  end
end
